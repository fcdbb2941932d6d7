#!/bin/bash
# Fresh-root install test of the Accord .deb, without Docker:
# debootstrap --variant=minbase bookworm into a folder, chroot, and check what
# hospital IT relies on:
#   - apt-get install ./accord_*.deb resolves every dependency from the mirror
#   - accord --version; accord policy check /etc/accord/policy.toml (exit 1: no certificates yet)
#   - desktop-file-validate on both desktop files; the dlopen()ed X11/GL
#     libraries are all present after install (Depends is complete)
#   - an IT-modified policy survives an upgrade to a newer build, both when the
#     new build ships the same policy and when it ships a changed one
#     (dpkg --force-confold, as a fleet would; the new one lands as .dpkg-dist)
#   - the service: system user "accord" (nologin), /var/lib/accord
#     accord:accord 0700, a pre-existing /etc/accord/agent.key 0644 root:root
#     turned root:accord 0640 by postinst, accord.service installed, enabled
#     (deb-systemd-helper works without systemd running), clean for
#     `systemd-analyze verify` and exposure <= 2.0; an ordinary login user can
#     neither read the key nor write the audit log; autostart runs `accord ui`
#   - when the binary has `accord service`: it runs as user accord on a demo
#     PKI on loopback, listens, and `accord connect` gets no_user (exit 8)
#     since no `accord ui` helper is connected; its audit log is accord's 0600
#   - apt-get remove keeps /var/lib/accord and the user; apt-get purge removes
#     every package file, /var/lib/accord and the unit's enable/mask links,
#     keeps IT's certificates in /etc/accord and leaves a user's
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

# Every process whose root is the chroot (the service started below): by pid.
chroot_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
    done
    return 0
}
stop_chroot_procs() { # SIGTERM, up to 5 s, then SIGKILL
    local pid i
    for pid in $(chroot_pids); do kill "$pid" 2>/dev/null || true; done
    for i in $(seq 50); do [ -z "$(chroot_pids)" ] && return 0; sleep 0.1; done
    for pid in $(chroot_pids); do kill -9 "$pid" 2>/dev/null || true; done
}
cleanup() {
    local rc=$?
    set +e
    [ -d "$ROOT" ] && stop_chroot_procs
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
# A key IT installed before the package (here too open: 0644 root:root);
# postinst must make it root:accord 0640.
mkdir -p "$ROOT/etc/accord"
printf -- '-----BEGIN PRIVATE KEY-----\nnot a key, deb-test\n-----END PRIVATE KEY-----\n' > "$ROOT/etc/accord/agent.key"
chown 0:0 "$ROOT/etc/accord/agent.key"; chmod 0644 "$ROOT/etc/accord/agent.key"
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

# --- 3b. the system service: user, directories, key, unit -------------------------
IFS=: read -r _ _ AUID AGID _ AHOME ASHELL <<< "$(in_root getent passwd accord)" || die "no user accord"
SYS_UID_MAX=$(awk '$1 == "SYS_UID_MAX" { print $2 }' "$ROOT/etc/login.defs"); SYS_UID_MAX=${SYS_UID_MAX:-999}
[ -n "$AUID" ] && [ "$AUID" -gt 0 ] && [ "$AUID" -le "$SYS_UID_MAX" ] || die "accord has uid '$AUID', not a system uid (1..$SYS_UID_MAX)"
[ "$(in_root getent group accord | cut -d: -f3)" = "$AGID" ] || die "accord's primary group is not the group accord"
[ "$ASHELL" = /usr/sbin/nologin ] || die "accord's shell is '$ASHELL', not /usr/sbin/nologin"
[ "$AHOME" = /var/lib/accord ] || die "accord's home is '$AHOME'"
[ "$(in_root stat -c '%U:%G %a' /var/lib/accord)" = "accord:accord 700" ] \
    || die "/var/lib/accord is $(in_root stat -c '%U:%G %a' /var/lib/accord), expected accord:accord 700"
[ "$(in_root stat -c '%U:%G %a' /etc/accord/agent.key)" = "root:accord 640" ] \
    || die "postinst left /etc/accord/agent.key $(in_root stat -c '%U:%G %a' /etc/accord/agent.key), expected root:accord 640"
ok "system user accord (uid $AUID, nologin), /var/lib/accord accord:accord 0700, agent.key 0644 root:root -> root:accord 0640"
UNIT=/usr/lib/systemd/system/accord.service
[ -f "$ROOT$UNIT" ] || die "missing $UNIT"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/accord.service" ] \
    || die "accord.service not enabled (no multi-user.target.wants link)"
grep -qx 'Exec=accord ui' "$ROOT/etc/xdg/autostart/accord.desktop" || die "autostart does not run 'accord ui'"
# systemd-analyze verify: in the root if it has systemd (minbase has not),
# else from the host on a copy whose ExecStart names the installed binary
# (verify wants the program to exist; man page presence is checked above).
if in_root sh -c 'command -v systemd-analyze' >/dev/null 2>&1; then
    out=$(in_root systemd-analyze verify "$UNIT" 2>&1) || die "systemd-analyze verify $UNIT: $out"
    [ -z "$out" ] || die "systemd-analyze verify $UNIT: $out"
    ok "systemd-analyze verify $UNIT (in the root): clean"
elif command -v systemd-analyze >/dev/null; then
    mkdir -p "$WORK/unit"
    sed "s|^ExecStart=/usr/bin/accord |ExecStart=$ROOT/usr/bin/accord |" "$ROOT$UNIT" > "$WORK/unit/accord.service"
    out=$(systemd-analyze verify --man=no "$WORK/unit/accord.service" 2>&1) || die "systemd-analyze verify $UNIT: $out"
    [ -z "$out" ] || die "systemd-analyze verify $UNIT: $out"
    systemd-analyze security --offline=yes --threshold=20 "$ROOT$UNIT" > "$WORK/unit/security.txt" 2>&1 \
        || { grep -E '^✗|Overall' "$WORK/unit/security.txt" >&2; die "installed unit's exposure above 2.0"; }
    ok "systemd-analyze verify $UNIT (from the host, ExecStart in the root): clean;" \
        "$(sed -n 's/.*Overall exposure level for accord.service: \([0-9.]*\).*/exposure \1/p' "$WORK/unit/security.txt")"
else
    echo "deb-test: SKIP: systemd-analyze verify (no systemd-analyze in the root nor on the host)"
fi

# An ordinary login user: no key, no audit log.
in_root useradd -m -s /bin/sh nurse
if in_root runuser -u nurse -- cat /etc/accord/agent.key > /dev/null 2>&1; then die "user nurse can read /etc/accord/agent.key"; fi
if in_root runuser -u nurse -- sh -c 'echo x >> /var/lib/accord/audit.jsonl' 2>/dev/null; then die "user nurse can write /var/lib/accord/audit.jsonl"; fi
[ ! -e "$ROOT/var/lib/accord/audit.jsonl" ] || [ ! -s "$ROOT/var/lib/accord/audit.jsonl" ] || ! grep -qx x "$ROOT/var/lib/accord/audit.jsonl" \
    || die "nurse wrote into the audit log"
in_root runuser -u accord -- cat /etc/accord/agent.key > /dev/null || die "user accord cannot read /etc/accord/agent.key"
in_root runuser -u accord -- sh -c ': > /var/lib/accord/.deb-test && rm /var/lib/accord/.deb-test' \
    || die "user accord cannot write /var/lib/accord"
ok "login user nurse can neither read agent.key nor write /var/lib/accord/audit.jsonl; accord can do both"
lap "service checks"

# --- 3c. the service itself (needs `accord service`) --------------------------
if in_root accord service --help > /dev/null 2>&1; then
    in_root accord pki demo /tmp/demo > "$WORK/pki.log" 2>&1 || { cat "$WORK/pki.log"; die "accord pki demo"; }
    # where the shipped policy looks: cp onto the existing key keeps root:accord 0640
    cp "$ROOT/tmp/demo/agent.pem" "$ROOT/etc/accord/agent.pem"
    cp "$ROOT/tmp/demo/agent.key" "$ROOT/etc/accord/agent.key"
    cp "$ROOT/tmp/demo/ca.pem" "$ROOT/etc/accord/technicians-ca.pem"
    chmod 0644 "$ROOT/etc/accord/agent.pem" "$ROOT/etc/accord/technicians-ca.pem"
    [ "$(in_root stat -c '%U:%G %a' /etc/accord/agent.key)" = "root:accord 640" ] || die "agent.key lost root:accord 0640"
    # a free loopback port (the chroot shares the host's network)
    PORT=
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if ! awk -v h="$(printf ':%04X' "$p")" 'NR > 1 && $2 ~ h"$" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6; then
            PORT=$p; break
        fi
    done
    [ -n "$PORT" ] || die "no free port"
    # The shipped policy, on loopback, asking whoever runs `accord ui` (no logind in a chroot).
    mkdir -p "$ROOT/tmp/svc"
    sed "s/^address = .*/address = \"127.0.0.1:$PORT\"/" "$ROOT/etc/accord/policy.toml" > "$ROOT/tmp/svc/policy.toml"
    printf '\n[service]\nseat = "single"\nusers = ["root"]\n' >> "$ROOT/tmp/svc/policy.toml"
    chmod 0644 "$ROOT/tmp/svc/policy.toml"
    # what systemd's RuntimeDirectory= would make
    mkdir -p "$ROOT/run/accord"; in_root chown accord:accord /run/accord; chmod 0755 "$ROOT/run/accord"
    in_root runuser -u accord -- env RUNTIME_DIRECTORY=/run/accord STATE_DIRECTORY=/var/lib/accord \
        accord service --policy /tmp/svc/policy.toml > "$WORK/service.log" 2>&1 &
    SVC=$!
    listening=0
    for _ in $(seq 100); do
        kill -0 "$SVC" 2>/dev/null || { cat "$WORK/service.log"; die "accord service exited"; }
        if awk -v h="$(printf ':%04X' "$PORT")" 'NR > 1 && $2 ~ h"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6; then
            listening=1; break
        fi
        sleep 0.1
    done
    [ $listening = 1 ] || { cat "$WORK/service.log"; die "accord service does not listen on 127.0.0.1:$PORT within 10 s"; }
    [ "$(in_root stat -c '%U %a' /run/accord/ui.sock 2>/dev/null)" = "accord 666" ] \
        || die "/run/accord/ui.sock: $(in_root stat -c '%U %a' /run/accord/ui.sock 2>&1), expected accord 666"
    ok "accord service runs as accord and listens on 127.0.0.1:$PORT; /run/accord/ui.sock accord 0666"
    rc=0
    in_root timeout 60 accord connect "127.0.0.1:$PORT" --ca /tmp/demo/ca.pem \
        --cert /tmp/demo/technician.pem --key /tmp/demo/technician.key \
        --ticket DEB-TEST --reason "deb-test" > "$WORK/connect.log" 2>&1 || rc=$?
    [ "$rc" = 8 ] || { cat "$WORK/connect.log" "$WORK/service.log"; die "accord connect with no helper: exit $rc, expected 8 (no_user)"; }
    ok "accord connect with no accord ui connected: exit 8 (no_user)"
    [ "$(in_root stat -c '%U:%G %a' /var/lib/accord/audit.jsonl 2>&1)" = "accord:accord 600" ] \
        || die "/var/lib/accord/audit.jsonl: $(in_root stat -c '%U:%G %a' /var/lib/accord/audit.jsonl 2>&1), expected accord:accord 600"
    in_root accord log verify /var/lib/accord/audit.jsonl > "$WORK/log-verify.log" 2>&1 \
        || { cat "$WORK/log-verify.log"; die "accord log verify /var/lib/accord/audit.jsonl"; }
    if in_root runuser -u nurse -- sh -c 'echo x >> /var/lib/accord/audit.jsonl' 2>/dev/null; then die "user nurse can write the service's audit log"; fi
    in_root accord log verify /var/lib/accord/audit.jsonl > /dev/null 2>&1 || die "audit log broken after nurse's attempt"
    ok "audit log /var/lib/accord/audit.jsonl accord 0600, chain intact ($(head -n1 "$WORK/log-verify.log")), nurse cannot append"
    stop_chroot_procs; wait "$SVC" 2>/dev/null || true
    lap "service run"
else
    die "the installed accord has no 'service' command"
fi

# --- 4. a user's audit log and an IT-modified policy --------------------------------
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

# the upgrades ran postinst again: user and permissions still right
[ "$(in_root stat -c '%U:%G %a' /etc/accord/agent.key)" = "root:accord 640" ] || die "agent.key changed by the upgrades"
[ "$(in_root stat -c '%U:%G %a' /var/lib/accord)" = "accord:accord 700" ] || die "/var/lib/accord changed by the upgrades"

# --- 7. remove, then purge -------------------------------------------------------------
in_root dpkg-query -L accord | sort > "$WORK/files.txt"
# the service's state: whatever the service wrote, else a stand-in log
[ -e "$ROOT/var/lib/accord/audit.jsonl" ] || { echo '{}' > "$ROOT/var/lib/accord/audit.jsonl"; in_root chown accord:accord /var/lib/accord/audit.jsonl; chmod 0600 "$ROOT/var/lib/accord/audit.jsonl"; }
STATE_SUM=$(sha256sum < "$ROOT/var/lib/accord/audit.jsonl")
in_root apt-get remove -y -q accord > "$WORK/remove.log" 2>&1 || { tail -20 "$WORK/remove.log"; die "apt-get remove"; }
[ ! -e "$ROOT/usr/bin/accord" ] || die "/usr/bin/accord left after remove"
[ "$(sha256sum < "$ROOT/var/lib/accord/audit.jsonl" 2>/dev/null)" = "$STATE_SUM" ] || die "apt-get remove touched /var/lib/accord/audit.jsonl"
in_root getent passwd accord > /dev/null || die "apt-get remove deleted the user accord"
ok "apt-get remove: program gone, /var/lib/accord/audit.jsonl and the user accord kept"
in_root apt-get purge -y -q accord > "$WORK/purge.log" 2>&1 || { tail -20 "$WORK/purge.log"; die "apt-get purge"; }
in_root dpkg-query -W -f '${Status}' accord 2>/dev/null | grep -q 'not-installed' \
    || ! in_root dpkg-query -W accord >/dev/null 2>&1 || die "accord still known to dpkg after purge"
left=0
while read -r f; do
    [ -n "$f" ] && [ -f "$ROOT$f" ] && { echo "left after purge: $f" >&2; left=1; }
done < "$WORK/files.txt"
[ $left = 0 ] || die "package files left after purge"
# IT's certificates and key are not the package's: they stay, nothing else.
left_etc=$(ls -A "$ROOT/etc/accord" | grep -vxE 'agent\.pem|agent\.key|technicians-ca\.pem' || true)
[ -z "$left_etc" ] || die "left in /etc/accord after purge: $left_etc"
[ -f "$ROOT/etc/accord/agent.key" ] || die "purge deleted IT's /etc/accord/agent.key"
[ ! -e "$ROOT/var/lib/accord" ] || die "/var/lib/accord left after purge"
for l in /etc/systemd/system/multi-user.target.wants/accord.service /etc/systemd/system/accord.service; do
    [ ! -L "$ROOT$l" ] && [ ! -e "$ROOT$l" ] || die "$l left after purge"
done
[ "$(sha256sum < "$ROOT/home/nurse/.local/share/accord/audit.jsonl")" = "$AUDIT_SUM" ] \
    || die "purge touched the user's audit log"
ok "apt-get purge: $(grep -c . "$WORK/files.txt") paths gone, /var/lib/accord and the unit links gone, IT's key kept, ~nurse/.local/share/accord/audit.jsonl untouched"
lap "purge"
echo "deb-test: PASS"
