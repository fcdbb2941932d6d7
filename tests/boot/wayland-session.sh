#!/bin/bash
# tests/boot/wayland-session.sh: the GNOME Wayland session of one user inside
# the booted container, run by boot-wayland-session@USER.service as
# `su -l USER -c ...` (pam_systemd has opened a logind session of type
# wayland on seat0 for it, and started the user's systemd instance).
# Stands in for GDM + gnome-session: the user's PipeWire and WirePlumber
# (systemctl --user), then `gnome-shell --headless --wayland --no-x11
# --virtual-monitor 1280x800` as a child of the session (Mutter takes the
# session from logind), and waits (bounded) until org.gnome.Mutter.ScreenCast
# and org.gnome.Mutter.RemoteDesktop are on the user's session bus. Then
# exports the session's environment to the user manager (as gnome-session
# does, so XDG autostart units see it), writes "ready" (or "failed: WHY") to
# /var/tmp/boot/USER/ready and runs every line written to the FIFO
# /var/tmp/boot/USER/run as a child of the session (its scope and env).
# Logs: /var/tmp/boot/USER/{session,gnome-shell}.log
set -u
B=/var/tmp/boot/$(id -un)
exec >"$B/session.log" 2>&1
fail() { echo "failed: $*" | tee "$B/ready.tmp"; mv "$B/ready.tmp" "$B/ready"; exit 1; }
# wait_for TENTHS COMMAND...: polls every 0.1 s
wait_for() {
    local n=$1; shift
    until "$@" >/dev/null 2>&1; do
        n=$((n - 1)); [ $n -gt 0 ] || return 1
        sleep 0.1
    done
}
export XDG_SESSION_TYPE=wayland XDG_CURRENT_DESKTOP=GNOME XDG_SESSION_DESKTOP=gnome
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}
export DBUS_SESSION_BUS_ADDRESS=${DBUS_SESSION_BUS_ADDRESS:-unix:path=$XDG_RUNTIME_DIR/bus}
echo "session ${XDG_SESSION_ID:-?} uid $(id -u): $(loginctl show-session "${XDG_SESSION_ID:-auto}" -p Type -p Seat -p Active 2>&1 | tr '\n' ' ')"
user_manager_up() { s=$(systemctl --user is-system-running 2>/dev/null); [ "$s" = running ] || [ "$s" = degraded ]; }
wait_for 200 user_manager_up || fail "the user's systemd instance is not running after 20 s: $(systemctl --user is-system-running 2>&1)"
systemctl --user start pipewire.socket pipewire.service wireplumber.service \
    || fail "systemctl --user start pipewire wireplumber: $(systemctl --user status pipewire wireplumber 2>&1 | tail -n 10)"
wait_for 100 systemctl --user is-active --quiet wireplumber.service \
    || fail "wireplumber not active: $(systemctl --user status wireplumber 2>&1 | tail -n 10)"
gnome-shell --headless --wayland --no-x11 --virtual-monitor 1280x800 >"$B/gnome-shell.log" 2>&1 &
SHELL_PID=$!
echo "$SHELL_PID" >"$B/gnome-shell.pid"
on_bus() { busctl --user status "$1" >/dev/null 2>&1; }
shell_up() { kill -0 "$SHELL_PID" 2>/dev/null || return 2; on_bus org.gnome.Mutter.ScreenCast && on_bus org.gnome.Mutter.RemoteDesktop; }
n=600
until shell_up; do
    kill -0 "$SHELL_PID" 2>/dev/null || fail "gnome-shell exited: $(tail -n 15 "$B/gnome-shell.log")"
    n=$((n - 1)); [ $n -gt 0 ] || fail "org.gnome.Mutter.ScreenCast/RemoteDesktop not on the session bus 60 s after gnome-shell started: $(tail -n 15 "$B/gnome-shell.log")"
    sleep 0.1
done
# the Wayland socket Mutter created (wayland-0 unless taken)
W=
for f in "$XDG_RUNTIME_DIR"/wayland-*; do
    [ -S "$f" ] && { W=${f##*/}; break; }
done
[ -n "$W" ] || fail "no wayland-* socket in $XDG_RUNTIME_DIR"
export WAYLAND_DISPLAY=$W
systemctl --user set-environment XDG_SESSION_TYPE=wayland XDG_CURRENT_DESKTOP=GNOME \
    XDG_SESSION_DESKTOP=gnome WAYLAND_DISPLAY="$W" ${XDG_SESSION_ID:+XDG_SESSION_ID=$XDG_SESSION_ID} \
    || fail "systemctl --user set-environment"
env | sort >"$B/env"
rm -f "$B/run"; mkfifo -m 0600 "$B/run"
echo ready >"$B/ready"
while :; do
    while IFS= read -r line; do bash -c "$line" & done <"$B/run"
done
