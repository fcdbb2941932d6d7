#!/bin/bash
# Runs `accord agent` under Xvfb (and a D-Bus session bus) and prints every
# shared object the running process has mapped, from /proc/PID/maps, as
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
# an empty policy file: defaults, no certificates => the agent does not listen
: > "$work/policy.toml"
DISPLAY=$disp HOME=$work XDG_DATA_HOME=$work/data XDG_RUNTIME_DIR=$work \
    dbus-run-session -- "$bin" agent --policy "$work/policy.toml" > "$work/agent.log" 2>&1 &
session=$!
sleep "$secs"
agent_pid=$(pgrep -n -x -P "$(pgrep -d, -P "$session")","$session" accord || true)
[ -n "$agent_pid" ] || { echo "agent not running; its log:" >&2; cat "$work/agent.log" >&2; exit 1; }
awk '$6 ~ /\.so/ {print $6}' "/proc/$agent_pid/maps" | sort -u > "$work/maps"
kill "$agent_pid"; wait "$session" 2>/dev/null || true
needed() { objdump -p "$1" 2>/dev/null | awk '$1 == "NEEDED" {print $2}'; }
{ needed "$bin"; while read -r f; do needed "$f"; done < "$work/maps"; } | sort -u > "$work/needed"
while read -r f; do
    so=$(objdump -p "$f" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
    [ -n "$so" ] || so=$f                     # DRI drivers have no SONAME: keep the path
    pkg=$(dpkg -S "$f" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    [ -n "$pkg" ] || pkg=$(dpkg -S "$(readlink -f "$f")" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    if grep -qxF "$so" "$work/needed"; then kind=needed; else kind=dlopen; fi
    echo "$so ${pkg:-?} $kind"
done < "$work/maps" | sort -k3,3 -k2,2
