#!/bin/sh
# tests/boot/session.sh: the graphical session of one user inside the booted
# container, run by boot-session@USER.service as `su -l USER -c ...` (so
# pam_systemd has opened a logind session of type x11 on seat0 for it).
# Stands in for a display manager's session: an Xvfb display, openbox, then
# runs every line written to the FIFO /var/tmp/boot/USER/run as a child of
# the session (so in its scope, with its DISPLAY and XDG_RUNTIME_DIR).
# /var/tmp/boot/USER/display holds the display number (written by the test).
set -u
B=/var/tmp/boot/$(id -un)
exec >"$B/session.log" 2>&1
D=$(cat "$B/display")
Xvfb ":$D" -screen 0 1280x800x24 -nolisten tcp -noreset >"$B/xvfb.log" 2>&1 &
i=0
until xdpyinfo -display ":$D" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "Xvfb :$D did not start"; exit 1; }
    sleep 0.1
done
export DISPLAY=":$D"
openbox >"$B/openbox.log" 2>&1 &
env | sort >"$B/env"
rm -f "$B/run"; mkfifo -m 0600 "$B/run"
echo ready >"$B/ready"
while :; do
    while IFS= read -r line; do sh -c "$line" & done <"$B/run"
done
