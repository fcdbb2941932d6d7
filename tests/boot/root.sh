# shellcheck shell=bash
# tests/boot/root.sh: cached Debian roots for the boot tests (sourced).
#
#   boot_root_tarball NAME PKG...   prints the path of a tarball of a Debian
#       $BOOT_SUITE root (debootstrap --variant=minbase, then apt-get install
#       --no-install-recommends PKG...), built on first use and cached in
#       $ACCORD_TEST_CACHE (default /var/cache/accord-tests, outside the
#       repository: a fresh clone on the same machine reuses it). The file
#       name carries NAME and a hash of suite + package list, so a changed
#       list builds a new root and never reuses a stale one.
#   boot_root_unpack TARBALL DIR    a fresh copy of it in DIR; on a tmpfs
#       of size $BOOT_ROOT_TMPFS mounted there when that is set (unpacking
#       and removing a 1 GB root on a busy disk takes minutes, on a tmpfs
#       seconds; _root_umount_all DIR drops it).
#
#   boot_root_layer BASE NAME PKG...   the same, built from the root in the
#       tarball BASE plus PKG... (the Wayland root: the X11 root + GNOME Shell).
# Needs root, debootstrap and zstd; logs go to $BOOT_WORK/root-NAME.log.

BOOT_SUITE=${BOOT_SUITE:-bookworm}
BOOT_MIRROR=${BOOT_MIRROR:-http://deb.debian.org/debian}
ACCORD_TEST_CACHE=${ACCORD_TEST_CACHE:-/var/cache/accord-tests}
# bump when the way roots are made changes (invalidates every cached root)
BOOT_ROOT_FORMAT=1

boot_root_tarball() { # NAME PKG...
    local name=$1; shift
    local key tarball dir log
    key=$(printf '%s\n' "format $BOOT_ROOT_FORMAT" "suite $BOOT_SUITE" "$@" | sort -u | sha256sum | cut -c1-12)
    tarball=$ACCORD_TEST_CACHE/$BOOT_SUITE-$name-$key.tar.zst
    if [ -s "$tarball" ]; then echo "$tarball"; return 0; fi
    mkdir -p "$ACCORD_TEST_CACHE" "$BOOT_WORK"
    dir=$BOOT_WORK/build-$name
    log=$BOOT_WORK/root-$name.log
    _root_umount_all "$dir"; rm -rf --one-file-system "$dir"
    echo "boot-test: building root '$name' ($BOOT_SUITE, $# packages; no cache yet: $tarball)" >&2
    if ! debootstrap --variant=minbase "$BOOT_SUITE" "$dir" "$BOOT_MIRROR" >"$log" 2>&1; then
        tail -n 20 "$log" >&2; echo "boot-test: debootstrap failed" >&2; return 1
    fi
    _root_install "$dir" "$log" "$@" || return 1
    _root_pack "$dir" "$tarball" "$@"
}

# boot_root_layer BASE NAME PKG...: a root made of the root in tarball BASE
# plus PKG... (apt-get install --no-install-recommends), cached like the
# others; its key is BASE's file name (which carries BASE's own key) and the
# list, so a new base or list builds a new layer. The Wayland root is the X11
# one plus GNOME Shell: the base's debootstrap is done once for both, and the
# X11 test keeps its smaller root.
boot_root_layer() { # BASE NAME PKG...
    local base=$1 name=$2; shift 2
    local key tarball dir log
    key=$(printf '%s\n' "format $BOOT_ROOT_FORMAT" "base $(basename "$base")" "$@" | sort -u | sha256sum | cut -c1-12)
    tarball=$ACCORD_TEST_CACHE/$BOOT_SUITE-$name-$key.tar.zst
    if [ -s "$tarball" ]; then echo "$tarball"; return 0; fi
    [ -s "$base" ] || { echo "boot-test: no base root $base for layer '$name'" >&2; return 1; }
    mkdir -p "$ACCORD_TEST_CACHE" "$BOOT_WORK"
    dir=$BOOT_WORK/build-$name
    log=$BOOT_WORK/root-$name.log
    echo "boot-test: building root '$name' ($(basename "$base") + $# packages; no cache yet: $tarball)" >&2
    boot_root_unpack "$base" "$dir" || { echo "boot-test: could not unpack $base" >&2; return 1; }
    : >"$log"
    _root_install "$dir" "$log" "$@" || return 1
    _root_pack "$dir" "$tarball" "$(cat "$dir/etc/accord-test-root.pkgs" 2>/dev/null)" "$@"
}

boot_root_unpack() { # TARBALL DIR
    _root_umount_all "$2"
    rm -rf --one-file-system "$2"
    mkdir -p "$2"
    if [ -n "${BOOT_ROOT_TMPFS:-}" ]; then
        mount -t tmpfs -o "size=$BOOT_ROOT_TMPFS,mode=0755" accord-test-root "$2" || return 1
    fi
    tar -C "$2" --numeric-owner --xattrs -I zstd -xpf "$1"
}

# _root_install DIR LOG PKG...: apt-get install in the chroot DIR, no service
# started; removes DIR on failure.
_root_install() {
    local dir=$1 log=$2 m=0; shift 2
    echo "deb $BOOT_MIRROR $BOOT_SUITE main" >"$dir/etc/apt/sources.list"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    # no service starts while packages are installed in a chroot
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
    mount -t proc proc "$dir/proc"
    mount --bind /dev "$dir/dev"
    chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive sh -c 'apt-get -q update && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
        sh "$@" >>"$log" 2>&1 || m=1
    # below DIR only: DIR itself may be the tmpfs the root was unpacked on
    _root_umount_below "$dir"
    if [ $m = 1 ]; then
        tail -n 30 "$log" >&2; echo "boot-test: apt-get install in the new root failed (log: $log)" >&2
        _root_umount_all "$dir"; rm -rf --one-file-system "$dir"; return 1
    fi
    rm -f "$dir/usr/sbin/policy-rc.d" "$dir/etc/resolv.conf"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
}

# _root_pack DIR TARBALL PKG...: records the list in the root, tars it
# (atomically) and removes DIR.
_root_pack() {
    local dir=$1 tarball=$2; shift 2
    printf '%s\n' "$@" | sed '/^$/d' >"$dir/etc/accord-test-root.pkgs"
    tar -C "$dir" --numeric-owner --xattrs -I 'zstd -T0 -3' -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    _root_umount_all "$dir"; rm -rf --one-file-system "$dir"
    echo "$tarball"
}

# _root_umount_all DIR: unmounts everything at or below DIR, deepest first.
# _root_umount_below DIR: the same, DIR itself left mounted (it may be the
# tmpfs the root was unpacked on).
_root_umount_all() { _root_umount "$1" '(/|$)'; }
_root_umount_below() { _root_umount "$1" '/'; }
_root_umount() { # DIR REGEX-AFTER-DIR
    local d m
    d=$(readlink -m "$1")
    findmnt -rn -o TARGET | grep -E "^$d$2" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    ! findmnt -rn -o TARGET | grep -qE "^$d$2"
}
