#!/bin/bash
# Runs `accord agent` under Xvfb (and a D-Bus session bus) on a demo PKI
# (loopback), asks it for a session with `accord connect` so that the prompt
# window opens (windows only exist while needed), and prints every shared
# object the running process has mapped, from /proc/PID/maps, as
# "soname package kind": kind "dlopen" for a library no other loaded object
# (nor the binary) has as DT_NEEDED, i.e. loaded with dlopen() by the agent's
# GUI stack or by a GL loader; "needed" for the others. Used to write
# installer/deb/runtime-libs.txt and Depends.
# usage: installer/find-runtime-libs.sh path/to/accord [seconds]
# needs: xvfb, dbus (dbus-run-session), binutils (objdump)
set -euo pipefail
bin=$(readlink -f "$1"); secs=${2:-8}
disp=:$((90 + RANDOM % 9))
Xvfb "$disp" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
work=$(mktemp -d)
trap 'kill "$agent_pid" "$xvfb" 2>/dev/null; rm -rf "$work"' EXIT
agent_pid=
sleep 1
"$bin" pki demo "$work/pki" > /dev/null
DISPLAY=$disp HOME=$work XDG_DATA_HOME=$work/data XDG_RUNTIME_DIR=$work \
    dbus-run-session -- "$bin" agent --policy "$work/pki/policy.toml" > "$work/agent.log" 2>&1 &
session=$!
sleep 2
# the request: the prompt window opens; nobody answers (timeout => refused)
"$bin" connect 127.0.0.1 --ca "$work/pki/ca.pem" --cert "$work/pki/technician.pem" \
    --key "$work/pki/technician.key" --ticket MAPS-1 --reason "find-runtime-libs" \
    --listen 127.0.0.1:0 > "$work/connect.log" 2>&1 &
sleep "$secs"
agent_pid=$(pgrep -n -x -P "$(pgrep -d, -P "$session")","$session" accord || true)
[ -n "$agent_pid" ] || { echo "agent not running; its log:" >&2; cat "$work/agent.log" >&2; exit 1; }
awk '$6 ~ /\.so/ {print $6}' "/proc/$agent_pid/maps" | sort -u > "$work/maps"
kill "$agent_pid"; wait "$session" 2>/dev/null || true
needed() { objdump -p "$1" 2>/dev/null | awk '$1 == "NEEDED" {print $2}'; }
{ needed "$bin"; while read -r f; do needed "$f"; done < "$work/maps"; } | sort -u > "$work/needed"
while read -r f; do
    so=$(objdump -p "$f" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
    # DRI drivers are hard links to one file whose SONAME names no file: use the file name
    [ -n "$so" ] && [ -e "$(dirname "$f")/$so" ] || so=$(basename "$f")
    pkg=
    for g in "$f" "${f#/usr}" "$(readlink -f "$f")" "$(readlink -f "$f" | sed 's#^/usr##')"; do
        [ -n "$pkg" ] || pkg=$(dpkg -S "$g" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    done
    if grep -qxF "$so" "$work/needed"; then kind=needed; else kind=dlopen; fi
    echo "$so ${pkg:-?} $kind"
done < "$work/maps" | sort -k3,3 -k2,2
