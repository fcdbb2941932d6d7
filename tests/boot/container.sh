# shellcheck shell=bash disable=SC2034,SC2317
# Shared by the tests that boot a Debian 12 container (tests/boot/boot-test.sh,
# tests/boot/wayland-test.sh): sourced, not run. Each test sets ROOT (the
# container's root), WORK (logs), B and HB (the test's folder inside the
# container and from the host) and defines `die` (which shows its own
# evidence) before calling these.
#
#   boot_clock NAME               lap/ok/note print "NAME: ..."; T0 and TL
#                                 start now (lap LABEL: time since the last lap)
#   BOOT_X11_PKGS                 the X11 root's packages: the base of both
#                                 roots (one list, so one cached tarball)
#   boot_container_start MACHINE  systemd-nspawn -b the root; PID1 (host pid
#                                 of its init) and NSPAWN set, logind running
#   boot_container_stop SECONDS   power-off (SIGTERM to nspawn, killed after
#                                 SECONDS); returns 1 if it had to be killed
#   boot_kill_leftovers           kills what still has the root as its root;
#                                 returns 1 if there was anything
#   boot_remove_root              unmounts and removes ROOT; 1 if it cannot
#   in_c COMMAND...               runs COMMAND in the container, as root
#   wait_for SECONDS COMMAND...   polls COMMAND every 0.2 s
#   boot_install_deb DEB          apt-get install DEB (copied to $HB) in it
#   boot_demo_pki                 `accord pki demo` where the shipped policy
#                                 looks (README.Debian), as IT would
#   boot_free_port                PORT: a free loopback port (the container
#                                 shares the host's network: not 5988)
#   listening                     whether 127.0.0.1:$PORT listens

# The container's root: systemd, logind, the X11 peers the tests drive, and
# accord's own Depends/Recommends so that a warm run downloads nothing big
# (apt-get install of the .deb still resolves them).
BOOT_X11_PKGS=(systemd systemd-sysv dbus dbus-user-session libpam-systemd
    xvfb openbox xdotool x11-utils imagemagick procps iproute2
    adduser libx11-6 libx11-xcb1 libxcb1 libxcursor1 libxi6 libxkbcommon0
    libxkbcommon-x11-0 libgl1 libegl1 libgl1-mesa-dri x11vnc)

NSPAWN=; PID1=

boot_clock() { # NAME
    BOOT_NAME=$1
    T0=$(date +%s.%N); TL=$T0
}
lap() {
    local now; now=$(date +%s.%N)
    awk -v a="$TL" -v b="$now" -v s="$1" -v n="$BOOT_NAME" 'BEGIN { printf "%s: time: %-32s %6.1f s\n", n, s, b - a }'
    TL=$now
}
ok() { echo "$BOOT_NAME: ok: $*"; }
note() { echo "$BOOT_NAME: $*"; }
# The whole run's time, for the exit trap.
boot_total() { # RC
    awk -v a="$T0" -v b="$(date +%s.%N)" -v rc="$1" -v n="$BOOT_NAME" 'BEGIN { printf "%s: total time %.1f s, exit %d\n", n, b - a, rc }'
}

# Runs a command in the booted container (all its namespaces), as root.
in_c() {
    nsenter -t "$PID1" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
wait_for() { # SECONDS COMMAND...
    local n=$(($1 * 5)); shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2; n=$((n - 1))
    done
    return 1
}

# Every process whose root is the container's (nspawn's children, nsenter'ed ones).
root_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
    done
    return 0
}

# The root's common setup: apt source, name, no login prompt on the console,
# the test's folder with the .deb in it.
boot_root_setup() { # HOSTNAME DEB
    echo "deb $BOOT_MIRROR $BOOT_SUITE main" >"$ROOT/etc/apt/sources.list"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    echo "$1" >"$ROOT/etc/hostname"
    ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"
    mkdir -p "$HB" "$ROOT/etc/systemd/user"
    cp "$2" "$HB/$(basename "$2")"
}

boot_container_start() { # MACHINE
    systemd-nspawn -D "$ROOT" -b --register=no --keep-unit -M "$1" --console=passive \
        >"$WORK/boot.log" 2>&1 &
    NSPAWN=$!
    _find_pid1() {
        local c
        for c in $(pgrep -P "$NSPAWN"); do
            # its PID is 1 in its own namespace
            [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$c/status" 2>/dev/null)" = 1 ] && { PID1=$c; return 0; }
        done
        return 1
    }
    _booted() { local s; s=$(in_c systemctl is-system-running 2>/dev/null); [ "$s" = running ] || [ "$s" = degraded ]; }
    wait_for 20 _find_pid1 || { cat "$WORK/boot.log" >&2; die "systemd-nspawn: no container init"; }
    wait_for 60 _booted || { cat "$WORK/boot.log" >&2; die "the container did not finish booting in 60 s: $(in_c systemctl is-system-running 2>&1)"; }
    local state
    state=$(in_c systemctl is-system-running 2>&1 || true)
    [ "$state" = running ] || note "container state $state: $(in_c systemctl --failed --no-legend --plain 2>&1 | awk '{print $1}' | tr '\n' ' ')"
    in_c systemctl is-active --quiet systemd-logind || die "systemd-logind is not running in the container"
}

boot_container_stop() { # SECONDS
    [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null || return 0
    local killed=0
    # SIGTERM to nspawn: it asks the container's systemd to power off
    kill -TERM "$NSPAWN"
    for _ in $(seq $(($1 * 10))); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$NSPAWN" 2>/dev/null && { note "container did not power off in $1 s: killed"; kill -KILL "$NSPAWN"; killed=1; }
    wait "$NSPAWN" 2>/dev/null
    return $killed
}

boot_kill_leftovers() {
    [ -n "$(root_pids)" ] || return 0
    local p
    for p in $(root_pids); do kill -KILL "$p" 2>/dev/null; done
    for _ in $(seq 50); do [ -z "$(root_pids)" ] && break; sleep 0.1; done
    return 1
}

boot_remove_root() {
    _root_umount_all "$ROOT" || { note "mounts left under $ROOT, not deleting it"; return 1; }
    rm -rf --one-file-system "$ROOT"
}

boot_install_deb() { # DEB (already in $HB)
    in_c apt-get -q update >"$WORK/apt-update.log" 2>&1 || { cat "$WORK/apt-update.log" >&2; die "apt-get update in the container"; }
    in_c apt-get install -y -q "$B/$(basename "$1")" >"$WORK/install.log" 2>&1 \
        || { tail -n 30 "$WORK/install.log" >&2; die "apt-get install the .deb in the container"; }
}

boot_demo_pki() {
    in_c accord pki demo $B/pki >"$WORK/pki.log" 2>&1 || { cat "$WORK/pki.log" >&2; die "accord pki demo"; }
    cp "$HB/pki/agent.pem" "$ROOT/etc/accord/agent.pem"
    cp "$HB/pki/agent.key" "$ROOT/etc/accord/agent.key"
    cp "$HB/pki/ca.pem" "$ROOT/etc/accord/technicians-ca.pem"
    in_c chown root:accord /etc/accord/agent.key
    in_c chmod 0640 /etc/accord/agent.key
    in_c chmod 0644 /etc/accord/agent.pem /etc/accord/technicians-ca.pem
}

boot_free_port() {
    local p
    PORT=
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if ! awk -v h="$(printf ':%04X' "$p")" 'NR > 1 && $2 ~ h"$" { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6; then
            PORT=$p; return 0
        fi
    done
    die "no free port"
}

listening() {
    awk -v h="$(printf ':%04X' "$PORT")" 'NR > 1 && $2 ~ h"$" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}
