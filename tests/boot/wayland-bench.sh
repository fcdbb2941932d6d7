#!/bin/bash
# Wayland benchmark: Accord's screen server for GNOME (`accord screen-server`
# over Mutter's ScreenCast + RemoteDesktop) against x11vnc on Xvfb, in the
# same run, the same booted container (the Wayland boot test's root) and the
# same 1280x800 size, read by the same measuring viewer
# (tests/boot/rfb_bench.py, encodings asked: ZRLE then Raw):
#
#   click→frame  ROUNDS clicks that change the screen: on GNOME a click on
#                Activities (the overview opens; Escape closes it), on Xvfb a
#                right click on the root window (openbox's root menu; Escape
#                closes it). From the click to the end of the first update
#                that changed pixels ("first") and of the last one ("whole",
#                the change wholly shown): median/max in ms
#   updates/s    the whole screen alternating between two solid colours,
#   KiB/s        BENCH_CHANGE_PAUSE s apart, by one process (rfb_bench.py
#                change; GNOME: gsettings primary-color of the background
#                through Gio; Xvfb: the root window's colour as xsetroot
#                -solid, libX11 through ctypes),
#                incremental updates requested as fast as they come for
#                SECONDS: updates and bytes per second
#   CPU/update   the server's utime+stime over that interval (/proc/PID/stat)
#                per update received; for Accord also gnome-shell's (Mutter
#                does the capture), for x11vnc Xvfb's, in a column of their own
#
# usage: tests/boot/wayland-bench.sh target/debian/accord_X_ARCH.deb   (make bench-wayland)
# env:   BENCH_ROUNDS (10) BENCH_SECONDS (10) BENCH_CHANGE_PAUSE (0.1: s
#        slept after each colour change; with none, a gsettings loop drove
#        40 changes/s and gnome-shell took the two cores)
#        ACCORD_TEST_CACHE, BOOT_MIRROR, BOOT_ROOT_TMPFS as for wayland-test.sh
#        BOOT_TEST_WORK (target/bench-wayland): root, logs, bench.txt
# Must run as root. Not part of `make test`.
# (dpkg-query's formats and sh -c's scripts are single-quoted on purpose)
# shellcheck disable=SC2016
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# = 1 ] || { echo "usage: $0 accord_X_ARCH.deb" >&2; exit 2; }
DEB=$(readlink -f "$1")
WORK=$(readlink -m "${BOOT_TEST_WORK:-target/bench-wayland}")
BOOT_WORK=$WORK
ROOT=$WORK/root
ROUNDS=${BENCH_ROUNDS:-10}
SECONDS_=${BENCH_SECONDS:-10}
PAUSE=${BENCH_CHANGE_PAUSE:-0.1}
BG_HEX='#1f8a70'
BG2_HEX='#8a1f70'

# shellcheck source=tests/boot/root.sh
. "$HERE/root.sh"
# shellcheck source=tests/boot/container.sh
. "$HERE/container.sh"
boot_clock wayland-bench

# the Wayland boot test's package list (the same cached root)
WAYLAND_PKGS=(gnome-shell mutter pipewire pipewire-bin wireplumber
    gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    python3-gi python3-dbus gir1.2-glib-2.0 libglib2.0-bin dconf-gsettings-backend dconf-cli
    gsettings-desktop-schemas fonts-dejavu-core fonts-cantarell)

B=/var/tmp/boot
HB=$ROOT$B
U=clin
RFB_FD=
CHANGER=

evidence() {
    [ -n "$PID1" ] && [ -d "/proc/$PID1" ] || return 0
    local f
    for f in "$HB/$U/session.log" "$HB/$U/gnome-shell.log" "$HB/$U/accord.err" "$HB/$U/accord.vlog" "$HB/x11vnc.log" "$HB/x11vnc.vlog" "$HB/$U/accord.out" "$HB/x11vnc.out"; do
        [ -s "$f" ] && { echo "---- $f (last 20)" >&2; tail -n 20 "$f" >&2; }
    done
    return 0
}
die() {
    echo "wayland-bench: FAIL: $*" >&2
    evidence
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (systemd-nspawn, nsenter)"
[ -f "$DEB" ] || die "no such .deb: $1"
for t in systemd-nspawn debootstrap nsenter zstd findmnt; do
    command -v "$t" >/dev/null || die "$t not found (make bench-wayland installs systemd-container, debootstrap, zstd)"
done

cleanup() {
    local rc=$?
    set +e
    [ -n "$RFB_FD" ] && exec {RFB_FD}>&-
    [ -n "$CHANGER" ] && touch "$HB/stop-change"
    if [ -n "$NSPAWN" ]; then
        boot_container_stop 30 || rc=1
        lap "power-off"
    fi
    if [ -n "$(root_pids)" ]; then
        note "processes left in the container after power-off: $(root_pids | tr '\n' ' '): killed"
        [ "$rc" = 0 ] && rc=1
        boot_kill_leftovers
    fi
    if boot_remove_root; then lap "remove root"; else [ "$rc" = 0 ] && rc=1; fi
    if [ -n "$(root_pids)" ] || findmnt -rn -o TARGET | grep -qE "^$ROOT(/|$)"; then
        note "FAIL: processes or mounts of the container remain"; [ "$rc" = 0 ] && rc=1
    fi
    boot_total "$rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the root and the boot (as wayland-test.sh) -------------------------------------
if [ -z "${BOOT_ROOT_TMPFS+set}" ]; then
    BOOT_ROOT_TMPFS=
    [ "$(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo)" -ge 6 ] && BOOT_ROOT_TMPFS=3G
fi
mkdir -p "$WORK"
BASE=$(boot_root_tarball x11 "${BOOT_X11_PKGS[@]}") || die "could not build the X11 base root"
TARBALL=$(boot_root_layer "$BASE" wayland "${WAYLAND_PKGS[@]}") || die "could not build the Wayland root"
boot_root_unpack "$TARBALL" "$ROOT" || die "could not unpack $TARBALL"
boot_root_setup accord-wayland "$DEB"
install -m 755 "$HERE/wayland-session.sh" "$HERE/rfb_bench.py" "$HB/"
cp "$HERE/boot-wayland-session@.service" "$ROOT/etc/systemd/system/"
cp "$HERE/boot-desktop.target" "$ROOT/etc/systemd/user/"
lap "root (cache: $(basename "$TARBALL"))"
boot_container_start accord-wayland
lap "boot"

# --- clin's seat0 GNOME Wayland session -----------------------------------------------
in_c useradd -m -s /bin/bash "$U"
UIDOF=$(in_c id -u "$U")
mkdir -p "$HB/$U"; in_c chown "$U:$U" "$B/$U"
in_c systemctl start "boot-wayland-session@$U.service"
wait_for 100 test -e "$HB/$U/ready" || die "$U's Wayland session wrote no ready/failed in 100 s"
[ "$(cat "$HB/$U/ready")" = ready ] || die "$U's Wayland session: $(cat "$HB/$U/ready")"
SHELL_PID=$(cat "$HB/$U/gnome-shell.pid")
in_session() { # COMMAND: run (bash) as a child of clin's session
    timeout 10 sh -c 'printf "%s\n" "$1" >"$2"' sh "$1" "$HB/$U/run" || die "cannot reach $U's session"
}
in_session "gsettings set org.gnome.desktop.background picture-options none && gsettings set org.gnome.desktop.background color-shading-type solid && gsettings set org.gnome.desktop.background primary-color '$BG_HEX' && echo done >$B/$U/gsettings.log 2>&1 || echo failed >>$B/$U/gsettings.log"
wait_for 10 grep -q . "$HB/$U/gsettings.log" || die "gsettings in $U's session did not finish"
wait_for 60 grep -q 'GNOME Shell started at' "$HB/$U/gnome-shell.log" \
    || die "gnome-shell did not log 'GNOME Shell started at' in 60 s"
lap "GNOME session"
boot_install_deb "$DEB"
lap "install $(basename "$DEB")"

CLK_TCK=$(in_c getconf CLK_TCK)
ACCORD_V=$(in_c dpkg-query -W -f '${Version}' accord)
MUTTER_V=$(in_c dpkg-query -W -f '${Version}' mutter)
X11VNC_V=$(in_c dpkg-query -W -f '${Version}' x11vnc)
XVFB_V=$(in_c dpkg-query -W -f '${Version}' xvfb)

# --- the viewer -----------------------------------------------------------------------
# viewer_start NAME TARGET AS: rfb_bench.py on TARGET, its commands through
# the fifo $HB/NAME.in (this shell holds the write end in RFB_FD), as clin
# in the session (AS=session) or as root (AS=root)
viewer_start() {
    local name=$1 target=$2 d=$B
    [ "$3" = session ] && d=$B/$U
    mkfifo -m 0600 "$ROOT$d/$name.in"
    : >"$ROOT$d/$name.out"
    exec {RFB_FD}<>"$ROOT$d/$name.in"
    if [ "$3" = session ]; then
        in_c chown "$U:$U" "$d/$name.in" "$d/$name.out"
        in_session "exec python3 $B/rfb_bench.py $target <$d/$name.in >$d/$name.out 2>$d/$name.vlog"
    else
        # without this shell's end of the fifo: else it never sees EOF
        in_c sh -c "exec python3 $B/rfb_bench.py $target <$d/$name.in >$d/$name.out 2>$d/$name.vlog" {RFB_FD}>&- &
    fi
    RFB_OUT=$ROOT$d/$name.out; RFB_LINES=0
    rfb_reply 60; case $REPLY in "ok 1280x800 "*) ;; *) die "rfb_bench.py on $target: $REPLY $(cat "$ROOT$d/$name.vlog" 2>/dev/null)" ;; esac
}
rfb_reply() { # SECONDS
    local n=$(($1 * 5))
    while [ "$(wc -l <"$RFB_OUT")" -le "$RFB_LINES" ]; do
        n=$((n - 1)); [ $n -gt 0 ] || die "rfb_bench.py did not answer in $1 s (line $((RFB_LINES + 1)))"
        sleep 0.2
    done
    RFB_LINES=$((RFB_LINES + 1))
    REPLY=$(sed -n "${RFB_LINES}p" "$RFB_OUT")
}
rfb() { # SECONDS COMMAND...
    local t=$1; shift
    echo "$*" >&"$RFB_FD"; rfb_reply "$t"
    case $REPLY in ok*) ;; *) die "rfb_bench.py: $*: $REPLY" ;; esac
}
viewer_stop() { rfb 10 quit; exec {RFB_FD}>&-; RFB_FD=; }
field() { # NAME: the value of NAME=... in $REPLY
    tr ' ' '\n' <<<"$REPLY" | sed -n "s/^$1=//p"
}
# stats LIST: "median/max (changed rounds)" of a comma list of ms ("-": no change)
stats() {
    tr ',' '\n' <<<"$1" | awk '$1 != "-" { print $1 + 0 }' | sort -n \
        | awk -v all="$(tr ',' '\n' <<<"$1" | wc -l)" '{ a[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf "%.0f/%.0f%s\n", m, a[NR], (NR < all ? sprintf(" (%d/%d)", NR, all) : "") }'
}
# changer_start KIND: the whole screen alternating between two colours,
# PAUSE s apart (rfb_bench.py change KIND: gnome in clin's session, x11 on
# :9), until $HB/stop-change; a line in $HB/changes per change
changer_start() {
    rm -f "$HB/stop-change"; : >"$HB/changes"; : >"$HB/change-$1.err"
    chmod 666 "$HB/changes" "$HB/change-$1.err"
    local cmd="python3 $B/rfb_bench.py change $1 $PAUSE $B/stop-change $B/changes '$BG2_HEX' '$BG_HEX' 2>$B/change-$1.err"
    if [ "$1" = gnome ]; then
        in_session "$cmd"
    else
        in_c sh -c "DISPLAY=:9 exec $cmd" {RFB_FD}>&- &
    fi
    CHANGER=1
    wait_for 10 test -s "$HB/changes" || die "the colour changer ($1) changes nothing: $(cat "$HB/change-$1.err")"
}
changer_stop() {
    touch "$HB/stop-change"
    local n; n=$(wc -l <"$HB/changes")
    sleep 1
    [ "$n" = "$(wc -l <"$HB/changes")" ] || sleep 1
    CHANGER=
}
# measure NAME SERVER_PID OTHER_PID: clicks then stream; sets RESULT_NAME
RESULTS=()
measure() {
    local name=$1 spid=$2 opid=$3 x=$4 y=$5 button=$6 kind=$7
    rfb 300 clicks "$ROUNDS" "$x" "$y" "$button" 0xff1b
    local enc first whole px
    enc=$(field enc); first=$(field first); whole=$(field whole); px=$(field px)
    note "$name: click rounds: enc=$enc first(ms)=$first whole(ms)=$whole pixels=$px"
    changer_start "$kind"
    rfb $((SECONDS_ + 60)) stream "$SECONDS_" "$spid,$opid" "$B/changes"
    changer_stop
    local senc updates bytes secs cpu
    senc=$(field enc); updates=$(field updates); bytes=$(field bytes); secs=$(field secs); cpu=$(field cpu)
    note "$name: stream: $REPLY"
    local sticks oticks
    sticks=$(tr ',' '\n' <<<"$cpu" | awk -F: -v p="$spid" '$1 == p { print $2 }')
    oticks=$(tr ',' '\n' <<<"$cpu" | awk -F: -v p="$opid" '$1 == p { print $2 }')
    RESULTS+=("$(awk -v n="$name" -v e="$enc/$senc" -v f="$(stats "$first")" -v w="$(stats "$whole")" \
        -v u="$updates" -v b="$bytes" -v s="$secs" -v st="$sticks" -v ot="$oticks" -v hz="$CLK_TCK" -v d="$(field changes)" '
        BEGIN {
            ups = u / s; kib = b / 1024 / s
            sc = u ? sprintf("%.1f", st * 1000 / hz / u) : "-"
            oc = u ? sprintf("%.1f", ot * 1000 / hz / u) : "-"
            printf "%-28s %-9s %-14s %-14s %9.1f %7.1f %9.1f %9s %10s\n", n, e, f, w, ups, kib, d / s, sc, oc
        }')")
}

# --- Accord's screen server on GNOME ---------------------------------------------------------
PRIV=/run/user/$UIDOF/accord-bench
in_c install -d -m 0700 -o "$U" -g "$U" "$PRIV"
in_session "accord screen-server --socket $PRIV/bench.sock --mode control --input 2>$B/$U/accord.err; echo \$? >$B/$U/accord.rc"
wait_for 10 in_c test -S "$PRIV/bench.sock" || die "accord screen-server: no socket in 10 s: $(cat "$HB/$U/accord.err" 2>/dev/null)"
ACCORD_PID=$(in_c pgrep -u "$U" -f "^accord screen-server --socket $PRIV/bench.sock")
[ -n "$ACCORD_PID" ] || die "no accord screen-server process"
viewer_start accord "$PRIV/bench.sock" session
# GNOME Shell starts in the overview: Escape leaves it
rfb 30 key 0xff1b
measure "accord ${ACCORD_V%%-*} (Mutter ${MUTTER_V%%-*})" "$ACCORD_PID" "$SHELL_PID" 40 15 1 gnome
viewer_stop
wait_for 10 test -s "$HB/$U/accord.rc" || die "accord screen-server still runs 10 s after its viewer left"
lap "accord screen-server"

# --- x11vnc on Xvfb ---------------------------------------------------------------------------
in_c systemd-run -q --unit=bench-xvfb Xvfb :9 -screen 0 1280x800x24 -nolisten tcp
wait_for 10 in_c test -S /tmp/.X11-unix/X9 || die "Xvfb :9 did not start"
in_c systemd-run -q --unit=bench-openbox -E DISPLAY=:9 openbox
# the root has no xsetroot: rfb_bench.py x11-root does its -solid (libX11 through ctypes)
in_c env DISPLAY=:9 python3 $B/rfb_bench.py x11-root "$BG_HEX" || die "could not set the X root window's colour"
in_c systemd-run -q --unit=bench-x11vnc -p StandardError=file:$B/x11vnc.log \
    x11vnc -display :9 -unixsock $B/x11vnc.sock -rfbport 0 -nopw -forever -shared
wait_for 15 in_c test -S $B/x11vnc.sock || die "x11vnc: no socket in 15 s: $(tail -n 5 "$HB/x11vnc.log")"
XVFB_PID=$(in_c systemctl show -p MainPID --value bench-xvfb)
X11VNC_PID=$(in_c systemctl show -p MainPID --value bench-x11vnc)
viewer_start x11vnc "$B/x11vnc.sock" root
rfb 30 key 0xff1b
XVFB_V=${XVFB_V#*:}
measure "x11vnc ${X11VNC_V%%-*} (Xvfb ${XVFB_V%%-*})" "$X11VNC_PID" "$XVFB_PID" 640 400 3 x11
viewer_stop
in_c systemctl stop bench-x11vnc bench-openbox bench-xvfb
lap "x11vnc"

# --- the figures ------------------------------------------------------------------------------
{
    echo "wayland-bench: $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "  $ROUNDS click rounds, $SECONDS_ s stream; ms; CPU in ms per update received (clock tick $((1000 / CLK_TCK)) ms)"
    echo "  server/comp: the server's and gnome-shell's (accord) or Xvfb's (x11vnc) CPU ms per update; changes/s: colour changes the loop drove"
    echo "  versions: accord $ACCORD_V, mutter $MUTTER_V, x11vnc $X11VNC_V, xvfb $XVFB_V"
    printf "%-28s %-9s %-14s %-14s %9s %7s %9s %9s %10s\n" server enc "click→first" "click→whole" updates/s KiB/s changes/s "CPU srv" "CPU comp"
    printf "%s\n" "${RESULTS[@]}"
} | tee "$WORK/bench.txt"
echo "wayland-bench: done (figures in $WORK/bench.txt)"
