#!/bin/bash
# Wayland boot test: a headless GNOME Shell Wayland session
# on seat0 of a booted Debian 12 container (systemd-nspawn, real systemd and
# logind, the X11 boot test's root plus GNOME Shell), seen and driven by the
# test's own Mutter client, and Accord's behaviour in it:
#
#   1. a seat0 session of user clin through pam_systemd (su -l from a system
#      unit, XDG_SESSION_TYPE=wayland): loginctl says Type=wayland Active=yes;
#      the user's PipeWire + WirePlumber (systemctl --user) and
#      `gnome-shell --headless --wayland --no-x11 --virtual-monitor 1280x800`
#      (tests/boot/wayland-session.sh); org.gnome.Mutter.ScreenCast and
#      .RemoteDesktop on clin's session bus
#   2. tests/boot/mutter_probe.py (RemoteDesktop + ScreenCast sessions of its
#      own) gets a PipeWire node; with the background set to a plain colour
#      (gsettings), a PNG frame of the screen is 1280x800 and mostly that
#      colour once Escape (RemoteDesktop) has left the overview GNOME Shell
#      starts in; a click on Activities opens the overview again
#   3. Accord's .deb installed; its `accord screen-server` (what the helper
#      starts for a GNOME Wayland session) run in clin's session on a private
#      socket and read by tests/boot/rfb_probe.py, a raw RFB viewer: view
#      only gives the desktop's frames, a click changes nothing and opens no
#      RemoteDesktop session (counted on the bus); a view that may become
#      control opens RemoteDesktop at the first click, which opens the
#      overview, and Escape closes it; SIGKILLed with Super held down, its
#      Mutter sessions end with it and the key goes up (GNOME opens the
#      overview on Super's release); the clipboard, per grant: the
#      technician's text pasted by a desktop application (the probe) as
#      UTF-8, the desktop's copy sent to the technician as Latin-1 with
#      `both`, never with `to_workstation`
#   4. its helper started as GNOME starts it (XDG autostart under clin's
#      systemd instance), `accord connect --view-only` from the technician's
#      side: the prompt on the screen as a Wayland window (the one light box
#      below the top bar), "Allow view only" clicked through RemoteDesktop
#      once armed; the audit log names the session's server `mutter`; a raw
#      viewer on connect's loopback port gets the screen the test sees; its
#      click opens no RemoteDesktop session; `accord end`: connect exits 0,
#      no screen server, no Mutter session left; a second session whose
#      helper is SIGKILLed ends, its screen server and Mutter sessions gone.
#   5. a click on the × of GNOME's own sharing indicator makes the screen
#      server exit 10 (the helper's cue to end the session, reason user)
#   No process of the container and no mount is left at the end.
#
# usage: tests/boot/wayland-test.sh target/debian/accord_X_ARCH.deb   (make boot-wayland-test)
# env:   ACCORD_TEST_CACHE (/var/cache/accord-tests)  cached root tarballs
#        BOOT_TEST_WORK    (target/boot-wayland-test) root, logs, frames
#        BOOT_MIRROR       (http://deb.debian.org/debian)
# Must run as root. Frames stay in $BOOT_TEST_WORK/shots.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# = 1 ] || { echo "usage: $0 accord_X_ARCH.deb" >&2; exit 2; }
DEB=$(readlink -f "$1")
WORK=$(readlink -m "${BOOT_TEST_WORK:-target/boot-wayland-test}")
BOOT_WORK=$WORK
ROOT=$WORK/root
SHOTS=$WORK/shots
# the background the frame must show (gsettings primary-color), RGB
BG_HEX='#1f8a70'

# shellcheck source=tests/boot/root.sh
. "$HERE/root.sh"
# shellcheck source=tests/boot/container.sh
. "$HERE/container.sh"
boot_clock wayland-test

# The X11 boot test's root (BOOT_X11_PKGS, the same cached tarball) plus what GNOME Shell headless, the user's PipeWire and the probe need
WAYLAND_PKGS=(gnome-shell mutter pipewire pipewire-bin wireplumber
    gstreamer1.0-pipewire gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    python3-gi python3-dbus gir1.2-glib-2.0 libglib2.0-bin dconf-gsettings-backend dconf-cli
    gsettings-desktop-schemas fonts-dejavu-core fonts-cantarell)

B=/var/tmp/boot          # inside the container
HB=$ROOT$B               # the same, from the host
U=clin
PROBE_FD=

evidence() {
    [ -n "$PID1" ] && [ -d "/proc/$PID1" ] || return 0
    local f
    for f in "$HB/$U/session.log" "$HB/$U/gnome-shell.log" "$HB/$U/probe.out" "$HB/$U/probe.err"; do
        [ -s "$f" ] && { echo "---- $f (last 20)" >&2; tail -n 20 "$f" >&2; }
    done
    if [ -n "${UIDOF:-}" ]; then
        echo "---- journalctl _UID=$UIDOF (clin's user units, last 30)" >&2
        in_c journalctl --no-pager -n 30 -o short-precise _UID="$UIDOF" >&2 2>&1 || true
    fi
    if in_c systemctl is-active --quiet accord 2>/dev/null; then
        echo "---- journalctl -u accord (last 20)" >&2
        in_c journalctl -u accord --no-pager -n 20 -o short-precise >&2 2>&1 || true
    fi
    echo "---- loginctl" >&2
    in_c loginctl list-sessions --no-legend >&2 2>&1 || true
}
die() {
    echo "wayland-test: FAIL: $*" >&2
    evidence
    exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, systemd-nspawn, nsenter)"
[ -f "$DEB" ] || die "no such .deb: $1"
for t in systemd-nspawn debootstrap nsenter zstd findmnt; do
    command -v "$t" >/dev/null || die "$t not found (make boot-wayland-test installs systemd-container, debootstrap, zstd)"
done

# Unlike boot-test, anything of the container left after its power-off
# fails the test: the Mutter and PipeWire sessions must end with it.
cleanup() {
    local rc=$?
    set +e
    [ -n "$PROBE_FD" ] && exec {PROBE_FD}>&-
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

# --- the root ---------------------------------------------------------------------
# The root (1.2 GB, 31000 files) on a tmpfs when memory allows: on a disk
# shared with compilers, unpacking it took 30 s and removing it 95 s.
# BOOT_ROOT_TMPFS= (empty) keeps it on disk.
if [ -z "${BOOT_ROOT_TMPFS+set}" ]; then
    BOOT_ROOT_TMPFS=
    [ "$(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo)" -ge 6 ] && BOOT_ROOT_TMPFS=3G
fi
mkdir -p "$WORK" "$SHOTS"
rm -f "$SHOTS"/*.png
BASE=$(boot_root_tarball x11 "${BOOT_X11_PKGS[@]}") || die "could not build the X11 base root"
TARBALL=$(boot_root_layer "$BASE" wayland "${WAYLAND_PKGS[@]}") || die "could not build the Wayland root"
lap "root (cache: $(basename "$TARBALL"))"
boot_root_unpack "$TARBALL" "$ROOT" || die "could not unpack $TARBALL"
boot_root_setup accord-wayland "$DEB"
install -m 755 "$HERE/wayland-session.sh" "$HERE/mutter_probe.py" "$HB/"
cp "$HERE/boot-wayland-session@.service" "$ROOT/etc/systemd/system/"
cp "$HERE/boot-desktop.target" "$ROOT/etc/systemd/user/"
lap "unpack root"

# --- boot ---------------------------------------------------------------------------
boot_container_start accord-wayland
ok "container booted, pid 1 = host pid $PID1, logind running"
lap "boot"

# --- 1. clin's seat0 Wayland session ---------------------------------------------------
in_c useradd -m -s /bin/bash "$U"
UIDOF=$(in_c id -u "$U")
mkdir -p "$HB/$U"; in_c chown "$U:$U" "$B/$U"
in_c systemctl start "boot-wayland-session@$U.service"
# wayland-session.sh bounds its own waits (20 s user manager, 10 s WirePlumber, 60 s Mutter)
wait_for 100 test -e "$HB/$U/ready" || die "$U's Wayland session wrote no ready/failed in 100 s"
[ "$(cat "$HB/$U/ready")" = ready ] || die "$U's Wayland session: $(cat "$HB/$U/ready")"
S=$(in_c loginctl list-sessions --no-legend | awk -v u="$U" '$3 == u { print $1 }' | head -n1)
[ -n "$S" ] || die "no logind session for $U: $(in_c loginctl list-sessions --no-legend)"
sprop() { in_c loginctl show-session "$S" -p "$1" --value; }
[ "$(sprop Type)" = wayland ] && [ "$(sprop Active)" = yes ] && [ "$(sprop Seat)" = seat0 ] && [ "$(sprop Class)" = user ] \
    || die "$U's session $S: $(in_c loginctl show-session "$S" -p Type -p Active -p Seat -p Class -p State | tr '\n' ' '), expected Type=wayland Active=yes Seat=seat0 Class=user"
SHELL_PID=$(cat "$HB/$U/gnome-shell.pid")
SHELL_SESSION=$(in_c busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager GetSessionByPID u "$SHELL_PID" 2>&1 || true)
case "$SHELL_SESSION" in *"/session/_3${S}"\"|*"/session/$S"\") ;; *) die "gnome-shell (pid $SHELL_PID) is not in session $S: $SHELL_SESSION" ;; esac
as_user() { # COMMAND...: as clin, with clin's session bus and user manager
    in_c setpriv --reuid "$UIDOF" --regid "$UIDOF" --init-groups \
        env HOME="/home/$U" XDG_RUNTIME_DIR="/run/user/$UIDOF" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$UIDOF/bus" "$@"
}
for n in org.gnome.Mutter.ScreenCast org.gnome.Mutter.RemoteDesktop; do
    as_user busctl --user status "$n" >/dev/null 2>&1 || die "$n is not on $U's session bus"
done
for u in pipewire.service wireplumber.service; do
    as_user systemctl --user is-active --quiet "$u" || die "$U's $u is not active: $(as_user systemctl --user status "$u" 2>&1 | tail -n 5)"
done
ok "1: seat0 session $S of $U: Type=wayland Active=yes Class=user; gnome-shell --headless (pid $SHELL_PID) in it; PipeWire + WirePlumber active; Mutter ScreenCast and RemoteDesktop on the session bus"
lap "Wayland session"

# --- 2. the screen as the test sees it --------------------------------------------------
# in_session COMMAND: runs COMMAND (bash) as a child of clin's session
in_session() {
    timeout 10 sh -c 'printf "%s\n" "$1" >"$2"' sh "$1" "$HB/$U/run" || die "cannot reach $U's session"
}
in_session "gsettings set org.gnome.desktop.background picture-options none && gsettings set org.gnome.desktop.background color-shading-type solid && gsettings set org.gnome.desktop.background primary-color '$BG_HEX' && echo done >$B/$U/gsettings.log 2>&1 || echo failed >>$B/$U/gsettings.log"
wait_for 10 grep -q . "$HB/$U/gsettings.log" || die "gsettings in $U's session did not finish"
[ "$(cat "$HB/$U/gsettings.log")" = "done" ] || die "gsettings set in $U's session failed"
[ "$(as_user gsettings get org.gnome.desktop.background primary-color)" = "'$BG_HEX'" ] \
    || die "background colour is $(as_user gsettings get org.gnome.desktop.background primary-color), expected '$BG_HEX'"

# GNOME Shell logs this line at startup-complete, once its startup
# animation is over. The probe starts after it: during startup the shell
# once left the probe's first call unanswered for 25 s.
wait_for 60 grep -q 'GNOME Shell started at' "$HB/$U/gnome-shell.log" \
    || die "gnome-shell did not log 'GNOME Shell started at' (startup complete) in 60 s"
mkfifo -m 0600 "$HB/$U/probe.in"; in_c chown "$U:$U" "$B/$U/probe.in"
# read-write: opening does not wait for the reader, and the probe sees the end
# of its input only when this shell closes it
exec {PROBE_FD}<>"$HB/$U/probe.in"
: >"$HB/$U/probe.out"; in_c chown "$U:$U" "$B/$U/probe.out"
in_session "exec python3 $B/mutter_probe.py <$B/$U/probe.in >$B/$U/probe.out 2>$B/$U/probe.err"
PROBE_LINES=0
# probe_reply: the probe's next line of output (within 40 s) in $REPLY
probe_reply() {
    local n=200
    while [ "$(wc -l <"$HB/$U/probe.out")" -le "$PROBE_LINES" ]; do
        n=$((n - 1)); [ $n -gt 0 ] || die "mutter_probe.py did not answer in 40 s (line $((PROBE_LINES + 1))): $(cat "$HB/$U/probe.err")"
        sleep 0.2
    done
    PROBE_LINES=$((PROBE_LINES + 1))
    REPLY=$(sed -n "${PROBE_LINES}p" "$HB/$U/probe.out")
}
probe() { # COMMAND: sends it, $REPLY its answer, which must be "ok ..."
    echo "$*" >&"$PROBE_FD"
    probe_reply
    case $REPLY in ok\ *) ;; *) die "mutter_probe.py: $*: $REPLY" ;; esac
}
probe_reply
case $REPLY in "node "[0-9]*) NODE=${REPLY#node } ;; *) die "mutter_probe.py did not get a PipeWire node: $REPLY $(cat "$HB/$U/probe.err")" ;; esac
ok "2: mutter_probe.py: RemoteDesktop + ScreenCast sessions, RecordMonitor: PipeWire node $NODE"
# frame NAME: a PNG of the screen in $SHOTS/NAME.png; FRAME_INFO "W H FRACTION"
# (the fraction of pixels within 6 % of the background colour)
frame() {
    rm -f "$HB/$U/$1.png"
    probe frame "$B/$U/$1.png"
    cp "$HB/$U/$1.png" "$SHOTS/$1.png"
    FRAME_INFO=$(in_c convert "$B/$U/$1.png" -alpha off -format '%w %h ' -write info:- \
        -fuzz 6% -fill black +opaque "$BG_HEX" -fill white -opaque "$BG_HEX" -format '%[fx:mean]' info:-) \
        || die "convert could not read the frame $SHOTS/$1.png"
}
# frames NAME TEST: frames (at most 10) until the fraction of background
# colour passes TEST (an awk condition on f); FRAME_INFO the last one's
frames() {
    local _
    for _ in $(seq 10); do
        frame "$1"
        awk -v f="${FRAME_INFO##* }" "BEGIN { exit !($2) }" && return 0
    done
    return 1
}
DESKTOP='f >= 0.8'   # a notification at most over the background
OVERVIEW='f < 0.7'   # windows' previews in the overview: about 0.5
frames overview-start "$OVERVIEW" \
    || die "no overview at the start of GNOME Shell: ${FRAME_INFO##* } of the frame is the background ($SHOTS/overview-start.png)"
read -r FW FH _ <<<"$FRAME_INFO"
[ "$FW $FH" = "1280 800" ] || die "the frame is ${FW}x$FH, expected 1280x800 ($SHOTS/overview-start.png)"
OV1=${FRAME_INFO##* }
probe key Escape
frames desktop "$DESKTOP" \
    || die "Escape (RemoteDesktop NotifyKeyboardKeysym) did not leave the overview, or the background is not $BG_HEX: ${FRAME_INFO##* } of the frame is ($SHOTS/desktop.png)"
ok "2: frames of the screen through PipeWire: ${FW}x$FH PNG; at start the overview ($OV1 background colour), after Escape the desktop: ${FRAME_INFO##* } of it the background $BG_HEX set by gsettings ($SHOTS/desktop.png)"
# a click through RemoteDesktop on "Activities" (top left) opens the overview
probe click 40 15
frames overview "$OVERVIEW" \
    || die "a click on Activities (40, 15) did not open the overview: ${FRAME_INFO##* } of the frame is the background ($SHOTS/overview.png)"
OV2=${FRAME_INFO##* }
probe key Escape
frames desktop2 "$DESKTOP" || die "Escape did not close the overview opened by the click ($SHOTS/desktop2.png)"
ok "2: a click on Activities opened the overview ($OV2 background, $SHOTS/overview.png), Escape closed it (${FRAME_INFO##* })"
lap "probe + frame"

# --- 3-4. Accord in the Wayland session -----------------------------------------------------
boot_install_deb "$DEB"
ok "apt-get install $(basename "$DEB") (accord $(in_c dpkg-query -W -f '${Version}' accord))"

# --- 3. Accord's screen server for GNOME, as the helper starts it ------------------------
# `accord screen-server` (what launch = "auto" starts in a Wayland session)
# run in clin's session on a socket in a private directory, read and driven
# by tests/boot/rfb_probe.py, a raw RFB viewer. The test's own probe keeps
# one RemoteDesktop and one ScreenCast session of its own throughout.
# mutter_sessions: "RD SC", the number of Mutter RemoteDesktop and ScreenCast sessions
mutter_sessions() {
    # one connection owns both names: its tree holds both kinds of objects
    local tree rd sc
    tree=$(as_user busctl --user tree --list org.gnome.Mutter.RemoteDesktop 2>/dev/null)
    rd=$(grep -c '^/org/gnome/Mutter/RemoteDesktop/Session/[^/]*$' <<<"$tree" || true)
    sc=$(grep -c '^/org/gnome/Mutter/ScreenCast/Session/[^/]*$' <<<"$tree" || true)
    echo "$rd $sc"
}
BASE_SESSIONS=$(mutter_sessions)
# as many RemoteDesktop sessions as before Accord's (the probe's own)
no_new_remote_desktop() { [ "$(awk '{ print $1 }' <<<"$(mutter_sessions)")" = "$(awk '{ print $1 }' <<<"$BASE_SESSIONS")" ]; }
PRIV=/run/user/$UIDOF/accord-boot
in_c install -d -m 0700 -o "$U" -g "$U" "$PRIV"
install -m 755 "$HERE/rfb_probe.py" "$HB/"
RFB_FD=; RFB_LINES=0; SERVER_RUN=0
# server_start NAME ARGS...: `accord screen-server ARGS` in clin's session on
# $PRIV/NAME.sock, its exit status in $HB/$U/NAME.rc, stderr in NAME.err
server_start() {
    local name=$1; shift
    rm -f "$HB/$U/$name.rc" "$HB/$U/$name.pid"
    in_session "echo \$\$ >$B/$U/$name.pid; ACCORD_LOG=accord=debug accord screen-server --socket $PRIV/$name.sock $* 2>$B/$U/$name.err; echo \$? >$B/$U/$name.rc"
    wait_for 10 in_c test -S "$PRIV/$name.sock" || die "accord screen-server $*: no socket in 10 s: $(cat "$HB/$U/$name.err" 2>/dev/null)"
}
# viewer_start NAME: rfb_probe.py on the server's socket (launched as the
# helper's launcher would connect: as clin)
viewer_start() {
    mkfifo -m 0600 "$HB/$U/$1.in"; in_c chown "$U:$U" "$B/$U/$1.in"
    exec {RFB_FD}<>"$HB/$U/$1.in"
    : >"$HB/$U/$1.out"; in_c chown "$U:$U" "$B/$U/$1.out"
    RFB_OUT=$HB/$U/$1.out; RFB_LINES=0
    in_session "exec python3 $B/rfb_probe.py $PRIV/$1.sock <$B/$U/$1.in >$B/$U/$1.out 2>$B/$U/$1.vlog"
    rfb_reply; case $REPLY in "ok 1280x800 "*) ;; *) die "rfb_probe.py on $1: $REPLY" ;; esac
}
rfb_reply() {
    local n=200
    while [ "$(wc -l <"$RFB_OUT")" -le "$RFB_LINES" ]; do
        n=$((n - 1)); [ $n -gt 0 ] || die "rfb_probe.py did not answer in 40 s (line $((RFB_LINES + 1)))"
        sleep 0.2
    done
    RFB_LINES=$((RFB_LINES + 1))
    REPLY=$(sed -n "${RFB_LINES}p" "$RFB_OUT")
}
rfb() { echo "$*" >&"$RFB_FD"; rfb_reply; case $REPLY in ok*) ;; *) die "rfb_probe.py: $*: $REPLY" ;; esac; }
# vframe NAME: a whole-screen update through Accord's server, as PNG in
# $SHOTS; VFRAME_F the fraction of the background colour in it
vframe() {
    rfb frame "$B/$U/$1.ppm"
    in_c convert "$B/$U/$1.ppm" "$B/$U/$1.png" && cp "$HB/$U/$1.png" "$SHOTS/$1.png"
    VFRAME_F=$(in_c convert "$B/$U/$1.ppm" -fuzz 6% -fill black +opaque "$BG_HEX" -fill white -opaque "$BG_HEX" -format '%[fx:mean]' info:-) \
        || die "convert could not read $1.ppm"
}
vframes() { # NAME TEST: up to 15 frames 0.2 s apart until TEST (awk on f) holds
    local _
    for _ in $(seq 15); do
        vframe "$1"
        awk -v f="$VFRAME_F" "BEGIN { exit !($2) }" && return 0
        sleep 0.2
    done
    return 1
}
viewer_stop() { rfb quit; exec {RFB_FD}>&-; RFB_FD=; }
server_rc() { # NAME SECONDS: the server's exit status in $rc
    wait_for "$2" test -s "$HB/$U/$1.rc" || die "accord screen-server ($1) still runs $2 s after its viewer left: $(cat "$HB/$U/$1.err")"
    rc=$(cat "$HB/$U/$1.rc")
}
sessions_back() { [ "$(mutter_sessions)" = "$BASE_SESSIONS" ]; }

# 3a. view only: the screen arrives; a click does nothing and opens no input
server_start view --mode view
viewer_start view
[ "$(mutter_sessions)" = "$(awk '{ print $1, $2 + 1 }' <<<"$BASE_SESSIONS")" ] \
    || die "view-only screen server: Mutter sessions (RemoteDesktop ScreenCast) are $(mutter_sessions), expected one more ScreenCast than $BASE_SESSIONS and no RemoteDesktop"
vframes view-desktop "$DESKTOP" || die "view only: the screen through accord screen-server is not the desktop: $VFRAME_F background ($SHOTS/view-desktop.png)"
VIEW_F=$VFRAME_F
rfb click 40 15
rfb key 0xff0d
sleep 1.5
vframe view-after-click
awk -v f="$VFRAME_F" "BEGIN { exit !($DESKTOP) }" \
    || die "view only: a click on Activities through accord screen-server changed the screen ($VFRAME_F background, $SHOTS/view-after-click.png)"
no_new_remote_desktop \
    || die "view only: input created a RemoteDesktop session: $(mutter_sessions) (base $BASE_SESSIONS)"
grep -q 'input in a view-only session: dropped' "$HB/$U/view.err" || die "view only: the server did not say it dropped the input: $(cat "$HB/$U/view.err")"
viewer_stop
server_rc view 10
[ "$rc" = 0 ] || die "view-only screen server exited $rc after its viewer left, expected 0: $(cat "$HB/$U/view.err")"
wait_for 10 sessions_back || die "view only: Mutter sessions after the server exited: $(mutter_sessions), expected $BASE_SESSIONS"
ok "3a: accord screen-server --mode view: 1280x800 RFB frames of the desktop ($VIEW_F background, $SHOTS/view-desktop.png); a click on Activities and Return changed nothing and opened no RemoteDesktop session; the viewer left: exit 0, no Mutter session left"
lap "screen server: view"

# 3b. a view that becomes control: the first input opens RemoteDesktop, clicks act
server_start control --mode view --input
viewer_start control
vframes control-desktop "$DESKTOP" || die "control: the first screen is not the desktop ($SHOTS/control-desktop.png)"
rfb click 40 15
vframes control-overview "$OVERVIEW" || die "control: a click on Activities through accord screen-server did not open the overview ($VFRAME_F background, $SHOTS/control-overview.png): $(cat "$HB/$U/control.err")"
OV3=$VFRAME_F
[ "$(mutter_sessions)" = "$(awk '{ print $1 + 1, $2 + 1 }' <<<"$BASE_SESSIONS")" ] \
    || die "control: Mutter sessions are $(mutter_sessions), expected one RemoteDesktop and one ScreenCast more than $BASE_SESSIONS (the view-only cast replaced)"
rfb key 0xff1b
vframes control-desktop2 "$DESKTOP" || die "control: Escape through accord screen-server did not close the overview ($SHOTS/control-desktop2.png)"
ok "3b: accord screen-server --mode view --input: the first click opened Mutter's RemoteDesktop and the overview ($OV3 background, $SHOTS/control-overview.png); Escape closed it"
# the server killed mid-session (as with the helper's death) with a key
# held down: Mutter's sessions go with it, and the key is released. The
# key is Super: GNOME opens the overview when Super goes up with nothing
# pressed in between, so the overview opening after the kill is the
# release (a Super left held would open nothing).
SERVER_PID=$(in_c pgrep -u "$U" -f "^accord screen-server --socket $PRIV/control.sock")
[ -n "$SERVER_PID" ] || die "control: no accord screen-server process"
frames before-held-super "$DESKTOP" || die "control: not on the desktop before the held key ($SHOTS/before-held-super.png)"
rfb press 0xffeb
sleep 1
frame held-super
awk -v f="${FRAME_INFO##* }" "BEGIN { exit !($DESKTOP) }" \
    || die "Super held down (not released) already changed the screen (${FRAME_INFO##* } background, $SHOTS/held-super.png)"
in_c kill -KILL "$SERVER_PID"
wait_for 10 sessions_back || die "the screen server was killed: Mutter sessions are still $(mutter_sessions), expected $BASE_SESSIONS"
exec {RFB_FD}>&-; RFB_FD=
frames released-super "$OVERVIEW" \
    || die "the screen server was killed with Super held: no overview (${FRAME_INFO##* } background, $SHOTS/released-super.png), so Mutter did not release the key"
probe key Escape
frames after-released-super "$DESKTOP" || die "Escape did not close the overview after the released Super ($SHOTS/after-released-super.png)"
ok "3c: accord screen-server killed (SIGKILL) mid-session with Super held: its RemoteDesktop and ScreenCast sessions ended with it ($(mutter_sessions) left = the probe's own), and the key went up (GNOME opened the overview on Super's release: $SHOTS/released-super.png)"

# 3d. the clipboard through Mutter's RemoteDesktop session, as granted. The
# test's probe stands for the applications of the desktop: it pastes
# (SelectionRead) and copies (SetSelection, serving SelectionTransfer).
hexof() { printf '%b' "$1" | od -An -tx1 | tr -d ' \n'; }
clip_round() { # NAME GRANT: CUT is what the viewer got, SERVED how often the copy was read
    server_start "$1" --mode control --input --clipboard "$2"
    viewer_start "$1"
    rfb key 0xffe1   # Shift: the first input opens the RemoteDesktop side
    sleep 0.5
    rfb cut "$(hexof 'Bonjour \xe9')"   # "Bonjour é" in Latin-1, as RFB has it
    sleep 0.5
    probe clipread
    [ "$REPLY" = "ok clip $(hexof 'Bonjour \xc3\xa9')" ] \
        || die "clipboard ($2): the technician's \"Bonjour é\" did not reach a paste on the desktop as UTF-8: $REPLY ($(cat "$HB/$U/$1.err"))"
    echo "clipset $(hexof 'Dossier n\xc2\xb0 42 \xe2\x82\xac') 4" >&"$PROBE_FD"
    rfb cutwait 5
    CUT=$REPLY
    probe_reply
    case $REPLY in "ok clipset served "*) ;; *) die "mutter_probe.py: clipset: $REPLY" ;; esac
    SERVED=${REPLY##* }
    viewer_stop
    server_rc "$1" 10
    [ "$rc" = 0 ] || die "clipboard ($2): the screen server exited $rc after its viewer left: $(cat "$HB/$U/$1.err")"
}
clip_round clipboth both
SERVED_BOTH=$SERVED
[ "$CUT" = "ok cut $(hexof 'Dossier n\xb0 42 ?')" ] \
    || die "clipboard (both): the desktop's copy \"Dossier n° 42 €\" did not reach the technician as Latin-1 (€ as ?): $CUT (served $SERVED; the server said: $(tail -n 15 "$HB/$U/clipboth.err"))"
ok "3d: clipboard both: the technician's text pasted on the desktop as UTF-8, the desktop's copy received by the technician as Latin-1"
clip_round clipto to_workstation
# Mutter itself reads a new selection once (its clipboard manager keeps a
# copy): the server's own read would be one more, as with "both".
[ "$CUT" = "ok nocut" ] && [ "$SERVED" -lt "$SERVED_BOTH" ] \
    || die "clipboard (to_workstation): the desktop's copy left the workstation: $CUT (the copy was read $SERVED times, $SERVED_BOTH with both)"
ok "3d: clipboard to_workstation: the technician's text pasted on the desktop; the desktop's copy not read by the server ($SERVED read(s), Mutter's own, against $SERVED_BOTH with both) and nothing sent"
lap "screen server: control"

boot_demo_pki
boot_free_port
POLICY=$ROOT/etc/accord/policy.toml
sed -i -e "s/^address = .*/address = \"127.0.0.1:$PORT\"/" "$POLICY"
grep -q "^address = \"127.0.0.1:$PORT\"" "$POLICY" || die "could not edit /etc/accord/policy.toml"
in_c systemctl restart accord
wait_for 20 listening || die "accord.service does not listen on 127.0.0.1:$PORT after restart"
lap "install accord"

# The helper as GNOME starts it: systemd-xdg-autostart-generator's unit from
# /etc/xdg/autostart/accord.desktop, under clin's systemd instance (which has
# the session's environment from wayland-session.sh).
as_user systemctl --user daemon-reload
as_user systemctl --user start boot-desktop.target \
    || die "systemctl --user start boot-desktop.target (pulls xdg-desktop-autostart.target): $(as_user systemctl --user status xdg-desktop-autostart.target 2>&1 | tail -n 5)"
as_user systemctl --user list-units --all --no-legend --plain 'app-accord*' >"$WORK/autostart-units.txt" 2>&1 || true
grep -q '^app-accord@autostart.service' "$WORK/autostart-units.txt" \
    || die "no app-accord@autostart.service from systemd-xdg-autostart-generator: $(cat "$WORK/autostart-units.txt")"
UNIT_ENV=$(as_user systemctl --user show-environment)
grep -qx 'XDG_SESSION_TYPE=wayland' <<<"$UNIT_ENV" && grep -q '^WAYLAND_DISPLAY=' <<<"$UNIT_ENV" \
    || die "clin's user manager lacks the Wayland session's environment: $(tr '\n' ' ' <<<"$UNIT_ENV")"
# It has no X display (gnome-shell --no-x11): its windows are Wayland ones.
helper_settled() {
    local s; s=$(as_user systemctl --user show -p ActiveState --value app-accord@autostart.service)
    [ "$s" != activating ] && { [ "$s" != active ] || in_c journalctl -u accord -o cat --no-pager | grep -q 'session helper connected' ; }
}
wait_for 15 helper_settled || note "the autostarted helper is still starting after 15 s"
HELPER_STATE=$(as_user systemctl --user show -p ActiveState --value app-accord@autostart.service)
HELPER_SAYS=$(in_c journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=app-accord@autostart.service _UID="$UIDOF" 2>/dev/null | tail -n 1)
note "the autostarted helper: $HELPER_STATE${HELPER_SAYS:+ ($HELPER_SAYS)}"

# consented_view TICKET NAME: `accord connect --view-only` (its PID in
# CPID), the prompt found on the screen and "Allow view only" clicked once
# armed; the session (SID) started on Accord's Mutter server.
consented_view() {
    local ticket=$1 name=$2
    in_c timeout 60 accord connect "127.0.0.1:$PORT" --ca $B/pki/ca.pem --cert $B/pki/technician.pem \
        --key $B/pki/technician.key --ticket "$ticket" --reason "wayland-test" --view-only >"$WORK/connect-$name.log" 2>&1 &
    CPID=$!
    prompt_shown() { frame "prompt-$name"; awk -v f="${FRAME_INFO##* }" 'BEGIN { exit !(f < 0.9) }'; }
    wait_for 30 prompt_shown || die "no prompt on the screen 30 s after the request ($SHOTS/prompt-$name.png): $(cat "$WORK/connect-$name.log")"
    # The prompt is the one light window on the background: its box, then
    # "Allow view only", bottom left, once the buttons are armed.
    # (below GNOME's top bar, whose white text would count)
    BOX=$(in_c convert "$B/$U/prompt-$name.png" -alpha off -crop 1280x760+0+40 +repage -fuzz 2% -fill black +opaque '#f8f8f8' -format '%@' info:) \
        || die "convert could not find the prompt in $SHOTS/prompt-$name.png"
    read -r PW PH PX PY <<<"$(tr 'x+' '  ' <<<"$BOX")"
    PY=$((PY + 40))
    [ "$PW" -gt 400 ] && [ "$PH" -gt 300 ] || die "the prompt's box is ${PW}x$PH at $PX,$PY: not a prompt ($SHOTS/prompt-$name.png)"
    sleep 3   # the arm delay (the buttons are inactive at first)
    frame "prompt-$name-armed"
    probe click $((PX + 70)) $((PY + PH - 35))
    wait_for 20 grep -q 'accepted (' "$WORK/connect-$name.log" \
        || die "no 'accepted' from accord connect after the click on \"Allow view only\" at $((PX + 70)),$((PY + PH - 35)) ($SHOTS/prompt-$name-armed.png): $(cat "$WORK/connect-$name.log")"
    SID=$(grep -F "\"$ticket\"" "$ROOT/var/lib/accord/audit.jsonl" | grep '"decision"' | grep -o '"session":"[^"]*"' | head -n1)
    [ -n "$SID" ] || die "no decision record for $ticket: $(tail -n 3 "$ROOT/var/lib/accord/audit.jsonl")"
    wait_for 10 sh -c "grep -F '$SID' '$ROOT/var/lib/accord/audit.jsonl' | grep -q '\"session_started\"'" \
        || die "no session_started for $ticket ($SID) in the audit log: $(tail -n 3 "$ROOT/var/lib/accord/audit.jsonl")"
    grep -F "$SID" "$ROOT/var/lib/accord/audit.jsonl" | grep '"session_started"' | grep -q 'mutter (started for the session' \
        || die "the session's upstream is not Accord's Mutter server: $(grep -F "$SID" "$ROOT/var/lib/accord/audit.jsonl" | grep session_started)"
}
consented_view BOOT-W1 w1
ok "4: accord connect --view-only: the prompt shown on GNOME Wayland ($SHOTS/prompt-w1.png, ${PW}x$PH at $PX,$PY), \"Allow view only\" clicked through RemoteDesktop: accepted, upstream = mutter (audit log)"
# The technician's viewer on accord connect's loopback port
mkfifo -m 0600 "$HB/tech.in"
exec {RFB_FD}<>"$HB/tech.in"
: >"$HB/tech.out"; RFB_OUT=$HB/tech.out; RFB_LINES=0
# Without the test's own ends of the fifos: a viewer holding its
# fifo's write end never sees the end of its input, outlives the test's
# quit, and holds the container's power-off.
in_c sh -c "exec python3 $B/rfb_probe.py tcp:5901 <$B/tech.in >$B/tech.out 2>$B/tech.err" {RFB_FD}>&- {PROBE_FD}>&- &
TECH_VIEWER=$!
rfb_reply; case $REPLY in "ok 1280x800 "*) ;; *) die "the technician's viewer through accord connect: $REPLY $(cat "$HB/tech.err" 2>/dev/null)" ;; esac
rfb frame "$B/tech-frame.ppm"
in_c convert "$B/tech-frame.ppm" "$B/tech-frame.png" && cp "$HB/tech-frame.png" "$SHOTS/tech-frame.png"
frame probe-during
DIFF=$(in_c compare -metric AE -fuzz 10% "$B/tech-frame.png" "$B/$U/probe-during.png" null: 2>&1 || true)
[ "${DIFF%%.*}" -lt 51200 ] 2>/dev/null \
    || die "the technician's frame differs from the screen in $DIFF pixels (over 5 %): $SHOTS/tech-frame.png vs $SHOTS/probe-during.png"
ok "4: the technician's viewer through accord connect receives the GNOME screen: 1280x800, $DIFF pixels differ from the test's own frame ($SHOTS/tech-frame.png)"
rfb click 40 15
sleep 1.5
frame view-click-w1
awk -v f="${FRAME_INFO##* }" "BEGIN { exit !(f >= 0.7) }" \
    || die "view only through accord connect: a click on Activities changed the screen (${FRAME_INFO##* } background, $SHOTS/view-click-w1.png)"
no_new_remote_desktop \
    || die "view only through accord connect: a RemoteDesktop session exists: $(mutter_sessions) (base $BASE_SESSIONS)"
in_c accord end >"$WORK/end-w1.log" 2>&1 || die "accord end: $(cat "$WORK/end-w1.log")"
wait_for 20 sh -c "! kill -0 $CPID 2>/dev/null" || die "accord connect still runs 20 s after accord end"
wait "$CPID" && rc=0 || rc=$?
[ "$rc" = 0 ] || die "accord connect exited $rc after accord end, expected 0: $(cat "$WORK/connect-w1.log")"
wait_for 10 sessions_back || die "after accord end, Mutter sessions are $(mutter_sessions), expected $BASE_SESSIONS (the screen server's gone)"
wait_for 10 sh -c "! nsenter -t $PID1 -a pgrep -f '^accord screen-server' >/dev/null" || die "accord screen-server still runs after accord end"
viewer_stop
wait_for 10 sh -c "! kill -0 $TECH_VIEWER 2>/dev/null" || die "the technician's viewer still runs 10 s after quit"
wait "$TECH_VIEWER" || true
ok "4: view only through accord connect: a click on Activities opened no RemoteDesktop session; accord end: connect exit 0, the screen server and its Mutter sessions gone"
# The helper killed mid-session: the screen server it started dies with it
# (PR_SET_PDEATHSIG, and its unit's cgroup) and takes its Mutter sessions
# along; the session ends and the technician is told.
consented_view BOOT-W2 w2
HELPER_MAIN=$(as_user systemctl --user show -p MainPID --value app-accord@autostart.service)
[ "${HELPER_MAIN:-0}" -gt 0 ] || die "no main process for app-accord@autostart.service"
CONNECTED=$(in_c journalctl -u accord -o cat --no-pager | grep -c 'session helper connected' || true)
in_c kill -KILL "$HELPER_MAIN"
wait_for 20 sh -c "! kill -0 $CPID 2>/dev/null" || die "accord connect still runs 20 s after the helper was killed: $(cat "$WORK/connect-w2.log")"
wait "$CPID" || true
wait_for 10 sessions_back || die "the helper was killed: Mutter sessions are $(mutter_sessions), expected $BASE_SESSIONS"
wait_for 10 sh -c "! nsenter -t $PID1 -a pgrep -f '^accord screen-server' >/dev/null" || die "accord screen-server still runs after its helper was killed"
W2_WHY=$(grep -F "$SID" "$ROOT/var/lib/accord/audit.jsonl" | grep '"session_ended"' | grep -o '"why":"[^"]*"' || true)
[ -n "$W2_WHY" ] || die "no session_ended for BOOT-W2 ($SID) after its helper was killed: $(tail -n 3 "$ROOT/var/lib/accord/audit.jsonl")"
ok "4: the helper SIGKILLed mid-session: accord connect ended, the screen server and its Mutter sessions gone ($(mutter_sessions) left = the probe's own), session_ended $W2_WHY"
# Started again, as the next login would.
as_user systemctl --user start app-accord@autostart.service
wait_for 20 sh -c "[ \$(nsenter -t $PID1 -a journalctl -u accord -o cat --no-pager | grep -c 'session helper connected') -gt $CONNECTED ]" \
    || die "the helper started again did not connect to the service"
frame after-connect
ok "4: the screen after the request: $SHOTS/after-connect.png (${FRAME_INFO##* } background)"
lap "accord connect"

# --- 5. her stop in GNOME's own sharing indicator ------------------------------------------
# The orange indicator in the top bar (its × at 1176,15 on a 1280-wide
# screen) stops every screen cast; Accord's server must exit 10, which the
# helper turns into the end of the session (reason user). Last: it also
# ends the probe's own sessions.
# Clicked through the server's own viewer (a control session): the test's
# probe may have lost its RemoteDesktop session by then.
server_start gnome-stop --mode control --input
viewer_start gnome-stop
vframe gnome-stop-before
rfb click 1176 15
server_rc gnome-stop 10
[ "$rc" = 10 ] || die "the × of GNOME's sharing indicator: accord screen-server exited $rc, expected 10 (EXIT_STOPPED_IN_GNOME): $(cat "$HB/$U/gnome-stop.err")"
grep -q 'the sharing was stopped from GNOME' "$HB/$U/gnome-stop.err" || die "accord screen-server did not say GNOME stopped the sharing: $(cat "$HB/$U/gnome-stop.err")"
exec {RFB_FD}>&-; RFB_FD=
ok "5: a click on the × of GNOME's sharing indicator ($SHOTS/gnome-stop-before.png): accord screen-server exited 10 (stopped in GNOME), which the helper turns into the end of the session"

# At logout the helper is stopped like any user unit: it must end on SIGTERM.
as_user systemctl --user stop app-accord@autostart.service &
STOPPER=$!
wait_for 15 sh -c "! nsenter -t $PID1 -a pgrep -u $U -f 'accord ui' >/dev/null" \
    || die "the helper (and its window process) still run 15 s after systemctl --user stop: $(in_c pgrep -a -u "$U" -f 'accord ui' | tr '\n' ' ')"
wait "$STOPPER" || true
ok "the helper stopped on SIGTERM (systemctl --user stop), its window process with it"

probe quit
exec {PROBE_FD}>&-; PROBE_FD=
wait_for 10 sh -c "! nsenter -t $PID1 -a pgrep -u $U -f mutter_probe.py" || die "mutter_probe.py still runs after quit"
echo "wayland-test: PASS (frames in $SHOTS)"
