#!/bin/bash
# Fresh-root install test of the Accord .deb, without Docker:
# debootstrap --variant=minbase bookworm into a folder, chroot, and check what
# hospital IT relies on (issue 5):
#   - apt-get install ./accord_*.deb resolves every dependency from the mirror
#   - accord --version; accord policy check /etc/accord/policy.toml (exit 1: no certificates yet)
#   - desktop-file-validate on both desktop files; the dlopen()ed X11/GL
#     libraries are all present after install (Depends is complete)
#   - an IT-modified policy survives an upgrade to a newer build, both when the
#     new build ships the same policy and when it ships a changed one
#     (dpkg --force-confold, as a fleet would; the new one lands as .dpkg-dist)
#   - apt-get purge removes every package file and leaves a user's
#     ~/.local/share/accord/audit.jsonl untouched.
#
# usage: installer/deb-test.sh accord_X_amd64.deb accord_Y_amd64.deb
#        (Y > X: a second build of the same tree with a bumped version)
# env:   DEB_TEST_CACHE  (target/debootstrap-cache)  cached rootfs tarball
#        DEB_TEST_WORK   (target/deb-test)           where the root is made
#        DEB_TEST_MIRROR (http://deb.debian.org/debian)
# Must run as root. Cleans up its mounts and the root on exit, even on failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "deb-test: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-test: ok: $*"; }
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mount)"
[ $# = 2 ] || die "usage: $0 NEW.deb UPGRADE.deb"
DEB1=$(readlink -f "$1"); DEB2=$(readlink -f "$2")
[ -f "$DEB1" ] && [ -f "$DEB2" ] || die "missing .deb: $1 $2"
for t in debootstrap dpkg-deb chroot mount findmnt sha256sum; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install debootstrap)"
done

SUITE=bookworm
MIRROR=${DEB_TEST_MIRROR:-http://deb.debian.org/debian}
CACHE=$(readlink -m "${DEB_TEST_CACHE:-target/debootstrap-cache}")
WORK=$(readlink -m "${DEB_TEST_WORK:-target/deb-test}")
# desktop-file-utils is part of the base root: it is the checker, not
# something accord depends on, so it cannot hide a missing Depends.
INCLUDE=desktop-file-utils
TARBALL=$CACHE/$SUITE-minbase-$(echo "$INCLUDE" | tr ',' '+').tar.gz
ROOT=$WORK/root

T0=$(date +%s.%N); TL=$T0
lap() { # prints the time of the step that just ended
    local now; now=$(date +%s.%N)
    awk -v a="$TL" -v b="$now" -v s="$1" 'BEGIN { printf "deb-test: time: %-28s %6.1f s\n", s, b - a }'
    TL=$now
}

cleanup() {
    local rc=$?
    set +e
    # unmount everything below the root, deepest first
    findmnt -rn -o TARGET | grep -E "^$ROOT(/|$)" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
    if findmnt -rn -o TARGET | grep -qE "^$ROOT(/|$)"; then
        echo "deb-test: mounts left under $ROOT, not deleting it" >&2
    else
        # --one-file-system: never follows a mount into the host, whatever happens
        rm -rf --one-file-system "$ROOT"
    fi
    awk -v a="$T0" -v b="$(date +%s.%N)" -v rc="$rc" 'BEGIN { printf "deb-test: total time %.1f s, exit %d\n", b - a, rc }'
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# --- 1. fresh root (cached tarball of a finished debootstrap) ----------------
mkdir -p "$CACHE" "$WORK"
[ ! -e "$ROOT" ] || rm -rf --one-file-system "$ROOT"   # left by a killed run
if [ ! -s "$TARBALL" ]; then
    echo "deb-test: debootstrap --variant=minbase $SUITE (no cache yet: $TARBALL)"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" \
        > "$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; die "debootstrap"; }
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb
    tar -C "$ROOT" --numeric-owner -czf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    lap "debootstrap (uncached)"
else
    mkdir -p "$ROOT"
    tar -C "$ROOT" --numeric-owner -xpzf "$TARBALL"
    lap "unpack cached root"
fi
mount -t proc proc "$ROOT/proc"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
echo "deb $MIRROR $SUITE main" > "$ROOT/etc/apt/sources.list"
in_root apt-get -q update > "$WORK/apt-update.log" 2>&1 || { cat "$WORK/apt-update.log"; die "apt-get update"; }
lap "apt-get update"

# --- 2. install: every dependency must resolve ---------------------------------
mkdir -p "$ROOT/tmp/debs"
cp "$DEB1" "$ROOT/tmp/debs/new.deb"; cp "$DEB2" "$ROOT/tmp/debs/upgrade.deb"
V1=$(dpkg-deb -f "$DEB1" Version); V2=$(dpkg-deb -f "$DEB2" Version)
dpkg --compare-versions "$V2" gt "$V1" || die "upgrade deb $V2 is not newer than $V1"
in_root apt-get install -y -q --no-install-recommends /tmp/debs/new.deb > "$WORK/install.log" 2>&1 \
    || { tail -30 "$WORK/install.log"; die "apt-get install ./accord.deb"; }
[ "$(in_root dpkg-query -W -f '${Status} ${Version}' accord)" = "install ok installed $V1" ] \
    || die "accord $V1 not installed"
in_root apt-get check -q >/dev/null || die "apt-get check: broken dependencies"
ok "apt-get install ./accord_${V1}_amd64.deb ($(grep -c '^Setting up' "$WORK/install.log") packages set up)"
lap "install"

# --- 3. the installed package ----------------------------------------------------
VOUT=$(in_root accord --version) || die "accord --version"
echo "$VOUT" | grep -q "${V1%%-*}" || die "accord --version says '$VOUT', package is $V1"
ok "accord --version: $VOUT"
# Fresh install: the policy is valid, but IT has not installed the
# certificates yet, so the check says the agent would not listen (exit 1).
rc=0; in_root accord policy check /etc/accord/policy.toml > "$WORK/policy-check.log" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q 'ERROR *listen.cert' "$WORK/policy-check.log" \
    || { cat "$WORK/policy-check.log"; die "accord policy check on a fresh install: exit $rc, expected 1 naming listen.cert"; }
ok "accord policy check /etc/accord/policy.toml: valid, certificates missing (exit 1)"
for d in /etc/xdg/autostart/accord.desktop /usr/share/applications/accord.desktop; do
    out=$(in_root desktop-file-validate "$d" 2>&1) || die "desktop-file-validate $d: $out"
    [ -z "$out" ] || die "desktop-file-validate $d: $out"
done
ok "desktop-file-validate: both desktop files"
for f in /usr/bin/accord /etc/accord/policy.toml /usr/share/man/man1/accord.1.gz \
         /usr/share/bash-completion/completions/accord /usr/share/zsh/vendor-completions/_accord \
         /usr/share/icons/hicolor/scalable/apps/accord.svg /usr/share/icons/hicolor/48x48/apps/accord.png \
         /usr/share/doc/accord/copyright; do
    [ -f "$ROOT$f" ] || die "missing $f"
done
in_root dpkg-query -W -f '${Conffiles}\n' accord | grep -q '^ /etc/accord/policy.toml ' \
    || die "/etc/accord/policy.toml is not a conffile"
ok "files in place; /etc/accord/policy.toml is a conffile"
in_root ldd /usr/bin/accord | grep 'not found' && die "unresolved linked library"
# Every shared object the running agent had mapped (installer/deb/runtime-libs.txt,
# from installer/find-runtime-libs.sh: "soname package [depends]"): its package
# is installed and the library is there; packages marked "depends" (what the
# agent itself dlopen()s) must be named in Depends.
DEPENDS=$(dpkg-deb -f "$DEB1" Depends)
in_root ldconfig -p > "$WORK/ldconfig.txt"
nlibs=0
while read -r so pkg flag; do
    case "$so" in ''|'#'*) continue ;; esac
    nlibs=$((nlibs + 1))
    if [ "$flag" = depends ]; then
        echo ", $DEPENDS," | grep -qE "[,|] *$pkg( \(|,| \|)" || die "$pkg ($so) is not in Depends: $DEPENDS"
    fi
    [ "$(in_root dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
        || die "$pkg ($so, loaded by the running agent) not installed with accord: Depends incomplete"
    grep -q "^[[:space:]]*$so " "$WORK/ldconfig.txt" \
        || [ -n "$(find "$ROOT/usr/lib" -name "$so" -print -quit)" ] || die "$so not found after install"
done < "$HERE/deb/runtime-libs.txt"
ok "all $nlibs libraries the running agent maps are installed; dlopen()ed ones in Depends"
lap "checks"

# --- 4. a user's audit log and an IT-modified policy --------------------------------
in_root useradd -m -s /bin/sh nurse
mkdir -p "$ROOT/home/nurse/.local/share/accord"
printf '{"seq":0,"event":"agent_started","prev":"%064d","hash":"x"}\n' 0 > "$ROOT/home/nurse/.local/share/accord/audit.jsonl"
in_root chown -R nurse:nurse /home/nurse/.local
AUDIT_SUM=$(sha256sum < "$ROOT/home/nurse/.local/share/accord/audit.jsonl")
sed -i -e 's/^timeout_s = .*/timeout_s = 45/' -e 's/^allow_control = .*/allow_control = false/' \
    "$ROOT/etc/accord/policy.toml"
grep -q '^timeout_s = 45$' "$ROOT/etc/accord/policy.toml" || die "could not edit the policy (key timeout_s missing?)"
rc=0; in_root accord policy check /etc/accord/policy.toml > /dev/null 2>&1 || rc=$?
[ "$rc" -le 1 ] || die "IT-modified policy rejected (exit $rc)"
POLICY_SUM=$(sha256sum < "$ROOT/etc/accord/policy.toml")

# --- 5. upgrade to a newer build (same shipped policy) -------------------------------
in_root apt-get install -y -q --no-install-recommends /tmp/debs/upgrade.deb > "$WORK/upgrade.log" 2>&1 \
    || { tail -30 "$WORK/upgrade.log"; die "upgrade to $V2"; }
[ "$(in_root dpkg-query -W -f '${Version}' accord)" = "$V2" ] || die "not upgraded to $V2"
[ "$(sha256sum < "$ROOT/etc/accord/policy.toml")" = "$POLICY_SUM" ] || die "upgrade to $V2 changed the IT policy"
ok "upgrade $V1 -> $V2 kept the IT-modified policy"

# --- 6. upgrade to a build whose shipped policy changed (conffile prompt case) -------
V3="$V2+confchange1"
rm -rf "$WORK/repack"; mkdir -p "$WORK/repack"
dpkg-deb -R "$DEB2" "$WORK/repack/pkg"
printf '\n# (test build %s: the shipped policy changed)\n' "$V3" >> "$WORK/repack/pkg/etc/accord/policy.toml"
sed -i "s/^Version: .*/Version: $V3/" "$WORK/repack/pkg/DEBIAN/control"
(cd "$WORK/repack/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz -b "$WORK/repack/pkg" "$ROOT/tmp/debs/confchange.deb" > /dev/null
in_root apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    /tmp/debs/confchange.deb > "$WORK/upgrade2.log" 2>&1 \
    || { tail -30 "$WORK/upgrade2.log"; die "upgrade to $V3"; }
[ "$(sha256sum < "$ROOT/etc/accord/policy.toml")" = "$POLICY_SUM" ] || die "upgrade to $V3 changed the IT policy"
[ -f "$ROOT/etc/accord/policy.toml.dpkg-dist" ] || die "new shipped policy not kept as .dpkg-dist"
ok "upgrade -> $V3 (shipped policy changed, --force-confold) kept the IT policy, new one in .dpkg-dist"
lap "upgrades"

# --- 7. purge ----------------------------------------------------------------------
in_root dpkg-query -L accord | sort > "$WORK/files.txt"
in_root apt-get purge -y -q accord > "$WORK/purge.log" 2>&1 || { tail -20 "$WORK/purge.log"; die "apt-get purge"; }
in_root dpkg-query -W -f '${Status}' accord 2>/dev/null | grep -q 'not-installed' \
    || ! in_root dpkg-query -W accord >/dev/null 2>&1 || die "accord still known to dpkg after purge"
left=0
while read -r f; do
    [ -n "$f" ] && [ -f "$ROOT$f" ] && { echo "left after purge: $f" >&2; left=1; }
done < "$WORK/files.txt"
[ $left = 0 ] || die "package files left after purge"
[ ! -e "$ROOT/etc/accord" ] || die "/etc/accord left after purge: $(ls -A "$ROOT/etc/accord")"
[ "$(sha256sum < "$ROOT/home/nurse/.local/share/accord/audit.jsonl")" = "$AUDIT_SUM" ] \
    || die "purge touched the user's audit log"
ok "apt-get purge: $(grep -c . "$WORK/files.txt") paths gone, /etc/accord gone, ~nurse/.local/share/accord/audit.jsonl untouched"
lap "purge"
echo "deb-test: PASS"
