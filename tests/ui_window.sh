#!/usr/bin/env bash
# Real-window test of the clinician's side (issues 6, 9): the real `accord
# service` (as root, like the system service) and the real `accord ui`
# helper under an unprivileged uid on an Xvfb display under openbox, asked
# by the real `accord connect`, answered with real clicks (xdotool), with
# screenshots. The service runs with `[service] seat = "single"` (no logind
# here): the one connected helper is asked.
#
#   round 0: no display at all: the helper cannot start
#                                          -> connect exits 8 (no_user)
#   round 1: prompt, click "Refuser"      -> connect exits 3, status idle
#   round 1b: text with Tabs/spaces/Returns typed into an xterm, then into
#            the prompt (windowactivate), 5 s each -> no answer; click
#            "Refuser" -> connect exits 3
#   round 2: prompt, "Autoriser le contrôle"; the helper starts x11vnc as
#            the clinician on a 0600 socket in a 0700 directory, no TCP
#            port, another account cannot connect; a viewer gets the real
#            screen through the tunnel; one banner on each of two RandR
#            monitors; each moved off screen -> back within 1 s; covered by
#            an always-on-top window -> on top again within 1 s; click
#            "Terminer" -> connect exits 0, status idle, no x11vnc left
#            before that, "Masquer mon écran" -> `paused` recorded, the tray
#            says hidden (screenshot banner-paused.png); "Reprendre" ->
#            `resumed` recorded
#   round 2b: the service stops: the helper's tray says unavailable; the
#            service restarts: the helper reconnects, a prompt is refused
#   round 2c: a session, then the helper is SIGKILLed -> its x11vnc dies
#            with it, the session ends ui_lost
#   round 2d: a new helper connects where control ran -> helper_replaced
#            recorded; the next prompt (screenshot prompt-replaced.png) says
#            so above the question; click "Refuser" -> connect exits 3
#   round 3: the prompt in English, click "Refuse" -> connect exits 3
#
# Screenshots land in $UI_WINDOW_OUT (default target/ui-window): prompt.png
# (view-only request, disarmed), prompt-control.png (armed), banner.png.
# Run as root on a fresh Debian 12, it installs what it needs.
# Usage: bash tests/ui_window.sh   (from .ci/run, after `cargo build`)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ACCORD_BIN:-$ROOT/target/debug/accord}
OUT=${UI_WINDOW_OUT:-$ROOT/target/ui-window}
DISP=${UI_WINDOW_DISPLAY:-:87}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()

log() { echo "ui_window: $*" >&2; }
fail() {
  log "FAIL: $*"
  for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 40 "$f" >&2; }; done
  exit 1
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- what the test and the binary need (Debian package names) ----
need_pkgs=()
for pair in Xvfb:xvfb openbox:openbox xdotool:xdotool xwininfo:x11-utils xdpyinfo:x11-utils xterm:xterm xrandr:x11-xserver-utils wmctrl:wmctrl xprop:x11-utils \
            import:imagemagick dbus-launch:dbus-x11 python3:python3; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_pkgs+=("${pair#*:}")
done
# Runtime libraries eframe (glow, x11), winit and global-hotkey load.
for pair in libGL.so.1:libgl1 libEGL.so.1:libegl1 libxkbcommon-x11.so.0:libxkbcommon-x11-0 \
            libXcursor.so.1:libxcursor1 libXrandr.so.2:libxrandr2 libXi.so.6:libxi6 \
            libX11-xcb.so.1:libx11-xcb1 libdbus-1.so.3:libdbus-1-3; do
  ldconfig -p | grep -q "${pair%%:*}" || need_pkgs+=("${pair#*:}")
done
ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1 || ls /usr/lib/*/dri/*swrast* >/dev/null 2>&1 \
  || need_pkgs+=(libgl1-mesa-dri)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing: ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then fail "missing ${need_pkgs[*]} and not root"; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --bin accord)

# ---- a demo PKI, a policy in French; the VNC server is started by the helper ----
"$BIN" pki demo "$WORK/pki" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AGENT_PORT=$(free_port)
POLICY=$WORK/pki/policy.toml
sed -i "s/127.0.0.1:5988/127.0.0.1:$AGENT_PORT/" "$POLICY"
grep -q '^launch = "auto"' "$POLICY" || fail "the demo policy does not launch the VNC server"
cat >>"$POLICY" <<EOF

[consent]
timeout_s = 30
arm_delay_ms = 1000

[ui]
language = "fr"

[service]
seat = "single"
users = ["accord-clinician"]
EOF

# The service's sockets (systemd's /run/accord), reachable by the helper.
export ACCORD_RUN_DIR=$WORK/svc
mkdir -p -m 0755 "$ACCORD_RUN_DIR"
chmod 0755 "$WORK"
# The helper runs as an unprivileged user, like a clinician's session (a
# real account: dbus-daemon wants a password-database entry).
id -u accord-clinician >/dev/null 2>&1 || useradd --system --no-create-home \
  --shell /usr/sbin/nologin accord-clinician
HELPER_UID=$(id -u accord-clinician)
as_helper() { setpriv --reuid "$HELPER_UID" --regid "$HELPER_UID" --clear-groups "$@"; }
# The clinician's $XDG_RUNTIME_DIR (logind makes /run/user/UID): where the
# helper starts the VNC server, on a private socket.
HELPER_RT=$WORK/run-clinician
mkdir -p "$HELPER_RT"; chown "$HELPER_UID:$HELPER_UID" "$HELPER_RT"; chmod 0700 "$HELPER_RT"
export ACCORD_LOG=info,accord::ui::layout=debug
connect() { # connect NAME TICKET [--view-only]
  local name=$1 ticket=$2; shift 2
  "$BIN" connect "127.0.0.1:$AGENT_PORT" --ca "$WORK/pki/ca.pem" --cert "$WORK/pki/technician.pem" \
    --key "$WORK/pki/technician.key" --ticket "$ticket" --reason "Test" \
    --listen "127.0.0.1:${LISTEN_PORT:-$(free_port)}" "$@" >"$WORK/$name.log" 2>&1
}
wait_status() { # wait_status PATTERN
  local i
  for i in $(seq 1 100); do
    if "$BIN" status 2>/dev/null | grep -q "$1"; then return 0; fi
    sleep 0.1
  done
  "$BIN" status || true
  return 1
}
start_agent() { # start_agent LOGNAME: the service, then the helper (log LOGNAME)
  "$BIN" service --policy "$POLICY" >"$WORK/service-$1.log" 2>&1 &
  SERVICE_PID=$!
  PIDS+=("$SERVICE_PID")
  wait_status "listening on" || fail "service did not start"
  # setpriv and env exec: $! is the helper's own pid (its tray's bus name).
  setpriv --reuid "$HELPER_UID" --regid "$HELPER_UID" --clear-groups \
    env HOME="$WORK" DBUS_SESSION_BUS_ADDRESS="${HELPER_BUS:-}" XDG_RUNTIME_DIR="$HELPER_RT" \
    "$BIN" ui --policy "$POLICY" >"$WORK/$1.log" 2>&1 &
  HELPER_PID=$!
  PIDS+=("$HELPER_PID")
}
wait_helper() { # the service logs it once the helper said hello
  local i
  for i in $(seq 1 100); do
    grep -aq "session helper connected" "$WORK/service-$1.log" && return 0
    sleep 0.1
  done
  fail "the helper never connected"
}
stop_agent() {
  kill -TERM "$HELPER_PID" "$SERVICE_PID" 2>/dev/null || true
  wait "$HELPER_PID" 2>/dev/null || true
  wait "$SERVICE_PID" 2>/dev/null || true
}

# ---- round 0: no display -> fail closed ----
log "round 0: no display"
( unset DISPLAY WAYLAND_DISPLAY; start_agent agent0
  for _ in $(seq 1 100); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$HELPER_PID" 2>/dev/null; then fail "the helper runs without a display"; fi
  grep -aq "no display" "$WORK/agent0.log" || fail "the helper did not say why it stopped"
  set +e; connect c0 UI-0; rc=$?; set -e
  [ "$rc" -eq 8 ] || fail "without a display, connect exited $rc, expected 8 (no_user)"
  stop_agent )
log "round 0: ok (no helper, refused no_user)"

# ---- the display ----
# One X screen split into two RandR monitors side by side (1280x800 each).
Xvfb "$DISP" -screen 0 2560x800x24 -nolisten tcp -noreset >"$WORK/xvfb.log" 2>&1 &
PIDS+=($!)
export DISPLAY=$DISP
for _ in $(seq 1 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
xdpyinfo >/dev/null 2>&1 || fail "Xvfb did not start"
xrandr --setmonitor accord-left 1280/339x800/212+0+0 screen >/dev/null 2>&1
xrandr --setmonitor accord-right 1280/339x800/212+1280+0 none >/dev/null
xrandr --listmonitors >"$WORK/monitors.log"
grep -q "Monitors: 2" "$WORK/monitors.log" || fail "two RandR monitors expected: $(cat "$WORK/monitors.log")"
# Screenshots of one monitor (the prompt's), or both.
shot() { import -window root -crop 1280x800+0+0 +repage "$1"; }
eval "$(dbus-launch --sh-syntax)"
PIDS+=("$DBUS_SESSION_BUS_PID")
openbox >"$WORK/openbox.log" 2>&1 &
PIDS+=($!)
# The clinician's own session bus (tray, notifications, screen saver).
mapfile -t bus < <(as_helper dbus-daemon --session --fork --print-address=1 --print-pid=1)
HELPER_BUS=${bus[0]}
PIDS+=("${bus[1]}")
sleep 0.5
start_agent agent
wait_helper agent
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# The helper's window processes (`accord ui-window`, started per need).
window_pids() { pgrep -P "$1" -f "ui-window" || true; }
# The helper and its window processes together (kB).
ui_rss() { local t p; t=$(rss "$1"); for p in $(window_pids "$1"); do t=$((t + $(rss "$p"))); done; echo "$t"; }
# RSS split: anonymous (heap, GL buffers) and file-backed (mapped libraries,
# e.g. Mesa's driver and LLVM), for the memory goal.
rss_split() { awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print "anon " a " kB, file " f " kB"}' "/proc/$1/status" 2>/dev/null; }
# What a process holds alone (kB): its private pages. The rest of its RSS is
# shared, above all the GL driver's code (the page cache's, mapped by every
# GL program on the desktop), which the spare loads ahead of need.
priv() { awk '/^Private_(Clean|Dirty):/ {t += $2} END {print t + 0}' "/proc/$1/smaps_rollup" 2>/dev/null; }
ui_priv() { local t p; t=$(priv "$1"); for p in $(window_pids "$1"); do t=$((t + $(priv "$p"))); done; echo "$t"; }
sleep 1
log "RSS: service $(rss "$SERVICE_PID") kB, idle helper $(rss "$HELPER_PID") kB, with its spare window process $(ui_rss "$HELPER_PID") kB (before any prompt)"

# Clicks the button whose centre the agent logged (window pixels).
click_button() { # click_button WINDOW LABEL
  local wid=$1 label=$2 pos i
  for i in $(seq 1 50); do
    pos=$(tail -n "+$((MARK + 1))" "$WORK/agent.log" | grep -a "button \"$label\" centre" | tail -n 1 | sed -E 's/.*centre (-?[0-9]+) (-?[0-9]+).*/\1 \2/' || true)
    [ -n "$pos" ] && break
    sleep 0.1
  done
  [ -n "$pos" ] || fail "no position logged for \"$label\""
  # shellcheck disable=SC2086
  xdotool mousemove --window "$wid" $pos click 1
}
find_window() { # find_window NAME-REGEX
  timeout 20 xdotool search --sync --onlyvisible --name "$1" 2>/dev/null | head -n 1
}

# ---- round 1: refuse ----
log "round 1: prompt, then Refuser"
MARK=$(wc -l <"$WORK/agent.log")
connect c1 UI-1 --view-only &
C1=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || fail "no prompt window"
wait_status "asking the user" || fail "status does not say asking"
sleep 0.4
shot "$OUT/prompt.png"
xwininfo -id "$WID" >"$WORK/prompt-xwininfo.log"
grep -q "Map State: IsViewable" "$WORK/prompt-xwininfo.log" || fail "prompt not viewable"
ACTIVE=$(xdotool getactivewindow 2>/dev/null || echo none)
[ "$ACTIVE" = "$WID" ] || log "note: active window $ACTIVE, prompt $WID"
SHOWN_BY=$(window_pids "$HELPER_PID")
sleep 1.0 # the arm delay
click_button "$WID" "Refuser"
set +e; wait "$C1"; rc=$?; set -e
[ "$rc" -eq 3 ] || fail "refused prompt: connect exited $rc, expected 3"
wait_status "no session" || fail "status not idle after refusal"
for _ in $(seq 1 50); do xdotool search --onlyvisible --name "demande d'assistance" >/dev/null 2>&1 || break; sleep 0.1; done
if xdotool search --onlyvisible --name "demande d'assistance" >/dev/null 2>&1; then fail "prompt still shown"; fi
log "round 1: ok (exit 3, prompt gone)"
# The window process lingers 3 s after its last window, then exits (and
# its GL buffers with it); a new spare (display connected, GL driver
# loaded, no window) replaces it: the helper and its spare stay as small
# as before the prompt.
gone_and_replaced() {
  local now p
  now=$(window_pids "$HELPER_PID")
  [ "$(echo "$now" | grep -c .)" -eq 1 ] || return 1
  for p in $SHOWN_BY; do echo "$now" | grep -qx "$p" && return 1; done
  return 0
}
for _ in $(seq 1 80); do gone_and_replaced && break; sleep 0.1; done
gone_and_replaced || fail "the prompt's window process ($SHOWN_BY) did not exit, or no spare replaced it: $(window_pids "$HELPER_PID")"
sleep 1   # the new spare loads the GL driver
IDLE_KB=$(ui_priv "$HELPER_PID")
log "memory: idle helper with its spare window process after one prompt: $IDLE_KB kB private, $(ui_rss "$HELPER_PID") kB RSS (helper $(rss_split "$HELPER_PID"); spare $(rss_split "$(window_pids "$HELPER_PID")"); goal: 40 MB private)"
[ "$IDLE_KB" -le 40960 ] || fail "idle helper and spare hold $IDLE_KB kB of private memory, over 40 MB"

# ---- round 1b: stray typing never answers (docs/ui-keyboard.md) ----
# Text with Tabs, spaces and Returns typed without a break while a control
# request arrives and for 5 s after: first into an xterm that has the focus,
# then into the prompt itself after `xdotool windowactivate`.
log "round 1b: typing stream while the prompt appears"
xterm -geometry 90x20+40+120 -title accord-typing -e sh -c "cat >'$WORK/typed.txt'" &
PIDS+=($!)
XT=$(find_window "accord-typing") || true
[ -n "$XT" ] || fail "no xterm"
xdotool windowactivate --sync "$XT" 2>/dev/null || xdotool windowfocus --sync "$XT"
TYPER=""
start_typing() { # keys ~40 ms apart, never a 1 s pause, until stop_typing
  ( while :; do xdotool type --delay 40 $'note patient\t12 \n\tok\t \n\t\t \n'; done ) &
  TYPER=$!
  PIDS+=("$TYPER")
}
stop_typing() { kill "$TYPER" 2>/dev/null || true; wait "$TYPER" 2>/dev/null || true; }
answered() { tail -n "+$((MARK + 1))" "$WORK/agent.log" | grep -a "clinician answered\|window closed" || true; }
MARK=$(wc -l <"$WORK/agent.log")
start_typing
sleep 1
connect c1b UI-1B &
C1B=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || { stop_typing; fail "no prompt window (round 1b)"; }
log "prompt $WID shown; active window $(xdotool getactivewindow 2>/dev/null || echo none) (xterm $XT)"
sleep 5
kill -0 "$C1B" 2>/dev/null || { stop_typing; fail "typing into the xterm answered the prompt: $(answered)"; }
[ -z "$(answered)" ] || { stop_typing; fail "typing answered: $(answered)"; }
log "round 1b: 5 s of typing elsewhere, no answer"
xdotool windowactivate "$WID" 2>/dev/null || xdotool windowfocus "$WID" 2>/dev/null || true
sleep 5
ACTIVE=$(xdotool getactivewindow 2>/dev/null || echo none)
stop_typing
log "typing stopped; active window $ACTIVE (prompt $WID)"
[ "$ACTIVE" = "$WID" ] || log "note: the window manager did not give the prompt the focus"
kill -0 "$C1B" 2>/dev/null || fail "typing into the prompt answered it: $(answered)"
[ -z "$(answered)" ] || fail "typing answered: $(answered)"
grep -q "note patient" "$WORK/typed.txt" || fail "the xterm received no typing (test broken)"
sleep 1.2
click_button "$WID" "Refuser"
set +e; wait "$C1B"; rc=$?; set -e
[ "$rc" -eq 3 ] || fail "refused after typing: connect exited $rc, expected 3"
wait_status "no session" || fail "status not idle after round 1b"
log "round 1b: ok (10 s of typing, no answer; then Refuser by click, exit 3)"
xdotool windowkill "$XT" 2>/dev/null || true

# ---- round 2: accept control, banner, Terminer ----
log "round 2: prompt, Autoriser le contrôle, banner, Terminer"
MARK=$(wc -l <"$WORK/agent.log")
# Sessions started so far; a new one is on record once its VNC server was
# started and handed over (not while the helper is still starting it).
started_count() { grep -ac '"event":"session_started"' "$WORK/pki/audit.jsonl" || true; }
wait_started() { # wait_started COUNT-BEFORE
  local i
  for i in $(seq 1 100); do [ "$(started_count)" -gt "$1" ] && return 0; sleep 0.1; done
  return 1
}
STARTED=$(started_count)
TUNNEL=$(free_port)
LISTEN_PORT=$TUNNEL connect c2 UI-2 &
C2=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || fail "no prompt window (round 2)"
sleep 1.4
shot "$OUT/prompt-control.png"
click_button "$WID" "Autoriser le contrôle"
BID=$(find_window "session en cours") || true
[ -n "$BID" ] || fail "no banner window"
wait_status "session in progress" || fail "status does not say in session"
wait_started "$STARTED" || fail "the session did not start"
# The VNC server exists only now, started by the helper as the clinician,
# reachable only through its private socket.
VNC_PID=$(pgrep -u "$HELPER_UID" -x x11vnc | head -n 1) || true
[ -n "$VNC_PID" ] || fail "no x11vnc of the clinician during the session: $(ps -eo user,pid,args | grep -i vnc)"
SOCK=$(ls "$HELPER_RT"/accord-vnc-*/vnc.sock 2>/dev/null | head -n 1)
[ -S "$SOCK" ] || fail "no private socket under $HELPER_RT"
[ "$(stat -c '%a %U' "$(dirname "$SOCK")")" = "700 accord-clinician" ] || fail "socket dir: $(stat -c '%a %U' "$(dirname "$SOCK")")"
[ "$(stat -c '%a %U' "$SOCK")" = "600 accord-clinician" ] || fail "socket: $(stat -c '%a %U' "$SOCK")"
if ss -ltnpH 2>/dev/null | grep -q "pid=$VNC_PID,"; then fail "x11vnc listens on TCP: $(ss -ltnp)"; fi
if setpriv --reuid 65534 --regid 65534 --clear-groups python3 -c \
    'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$SOCK" 2>/dev/null; then
  fail "another account connected to the session's VNC socket"
fi
# A viewer through the tunnel gets the real screen (2560x800); it stays
# connected (draining) until the session ends.
cat >"$WORK/viewer.py" <<'EOF'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def rd(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise SystemExit("closed")
        b += c
    return b
rd(12); s.sendall(b"RFB 003.008\n")
n = rd(1)[0]; types = rd(n); s.sendall(b"\x01"); rd(4); s.sendall(b"\x01")
w, h = struct.unpack(">HH", rd(4)); rd(16); rd(struct.unpack(">I", rd(4))[0])
s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
print(w, h, "update" if rd(1) == b"\x00" else "other", flush=True)
s.settimeout(None)
while s.recv(65536):
    pass
EOF
python3 "$WORK/viewer.py" "$TUNNEL" >"$WORK/viewer.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/viewer.out" ] && break; sleep 0.1; done
GEOM=$(head -n 1 "$WORK/viewer.out")
[ "$GEOM" = "2560 800 update" ] || fail "viewer got: $GEOM"
log "x11vnc pid $VNC_PID (clinician), socket 0600 in a 0700 dir, no TCP port; a viewer got a $GEOM"
sleep 1.2
import -window root "$OUT/banner-two-monitors.png"
shot "$OUT/banner.png"
# One banner per monitor, each with its own "Terminer".
BIDS=$(xdotool search --onlyvisible --name "session en cours" 2>/dev/null | sort -u)
[ "$(echo "$BIDS" | wc -l)" -eq 2 ] || fail "expected 2 banners, found: $(echo "$BIDS" | tr '\n' ' ')"
LEFT=""; RIGHT=""
for b in $BIDS; do
  eval "$(xdotool getwindowgeometry --shell "$b")"
  log "banner $b at x=$X y=$Y ${WIDTH}x${HEIGHT}"
  [ "$Y" -le 2 ] || fail "banner $b not at the top (y=$Y)"
  if [ "$X" -lt 1280 ] && [ $((X + WIDTH)) -le 1280 ]; then LEFT=$b; fi
  if [ "$X" -ge 1280 ]; then RIGHT=$b; fi
done
[ -n "$LEFT" ] && [ -n "$RIGHT" ] || fail "the two banners are not one per monitor"
BID=$LEFT
kill -0 "$C2" 2>/dev/null || fail "connect ended before Terminer"

# Pushed off screen: back on its monitor's top edge within a second.
ms() { date +%s%3N; }
back_on_top_edge() { # back_on_top_edge WIN XMIN XMAX -> prints ms taken
  local w=$1 lo=$2 hi=$3 t0 i
  t0=$(ms)
  for i in $(seq 1 60); do
    eval "$(xdotool getwindowgeometry --shell "$w")"
    if [ "$Y" -le 2 ] && [ "$X" -ge "$lo" ] && [ $((X + WIDTH)) -le "$hi" ]; then echo $(( $(ms) - t0 )); return 0; fi
    sleep 0.05
  done
  return 1
}
for b in "$LEFT" "$RIGHT"; do
  if [ "$b" = "$LEFT" ]; then lo=0; hi=1280; else lo=1280; hi=2560; fi
  xdotool windowmove "$b" 3000 3000
  T=$(back_on_top_edge "$b" $lo $hi) || fail "banner $b moved to 3000,3000 did not come back"
  log "banner $b moved to 3000,3000: back on its monitor's top edge in ${T} ms"
  [ "$T" -le 1500 ] || fail "banner took ${T} ms to come back (promise: 1 s)"
done
# Dragged sideways along the top edge: it stays where it was put.
xdotool windowmove "$LEFT" 40 0
sleep 1.2
eval "$(xdotool getwindowgeometry --shell "$LEFT")"
[ "$X" -le 60 ] && [ "$Y" -le 2 ] || fail "banner moved along the top edge did not stay (x=$X y=$Y)"

# Covered by a window that is itself "always on top" and raised over it.
xterm -geometry 120x6+0+0 -title accord-cover -e sleep 60 &
PIDS+=($!)
CW=$(find_window "accord-cover") || true
[ -n "$CW" ] || fail "no covering window"
wmctrl -i -r "$CW" -b add,above
stack_index() { # position in bottom-to-top stacking order
  xprop -root _NET_CLIENT_LIST_STACKING | tr -d ',' | tr ' ' '\n' | grep -n -i "^0x0*$(printf '%x' "$1")$" | cut -d: -f1
}
t0=$(ms)
wmctrl -i -a "$CW"; xdotool windowraise "$CW"
sleep 0.1
log "after raising the cover: banner at $(stack_index "$LEFT"), cover at $(stack_index "$CW")"
ON=""
for _ in $(seq 1 60); do
  if [ "$(stack_index "$LEFT")" -gt "$(stack_index "$CW")" ]; then ON=1; break; fi
  sleep 0.05
done
T=$(( $(ms) - t0 ))
[ -n "$ON" ] || fail "banner stayed under the covering window"
log "banner covered by an always-on-top window: on top again in ${T} ms"
[ "$T" -le 1500 ] || fail "banner took ${T} ms to come back on top (promise: 1 s)"
import -window root "$OUT/banner-covered.png"
xdotool windowkill "$CW" 2>/dev/null || true
# The tray (StatusNotifierItem over D-Bus, no tray host needed to read it).
if command -v busctl >/dev/null 2>&1; then
  SNI="org.kde.StatusNotifierItem-$HELPER_PID-1"
  TIP=$(as_helper busctl --address="$HELPER_BUS" get-property "$SNI" /StatusNotifierItem org.kde.StatusNotifierItem ToolTip 2>&1 || true)
  case "$TIP" in
    *"distance en cours"*) log "tray: $SNI says a remote assistance is in progress" ;;
    *) fail "tray tooltip does not show the session: ${TIP: -200}" ;;
  esac
fi
# "Masquer mon écran": the service records it, the banners and the tray say
# the screen is hidden; "Reprendre" shows it again (consent in time).
audit_count() { grep -ac "\"event\":\"$1\"" "$WORK/pki/audit.jsonl" || true; }
wait_audit() { # wait_audit EVENT COUNT-BEFORE
  local i
  for i in $(seq 1 50); do [ "$(audit_count "$1")" -gt "$2" ] && return 0; sleep 0.1; done
  return 1
}
PAUSED=$(audit_count paused); RESUMED=$(audit_count resumed)
click_button "$LEFT" "Masquer mon écran"
wait_audit paused "$PAUSED" || fail "Masquer mon écran: no paused record"
sleep 1.2
shot "$OUT/banner-paused.png"
if command -v busctl >/dev/null 2>&1; then
  TIP=$(as_helper busctl --address="$HELPER_BUS" get-property "$SNI" /StatusNotifierItem org.kde.StatusNotifierItem ToolTip 2>&1 || true)
  case "$TIP" in
    *"cran masqu"*) log "tray: the screen is hidden" ;; # busctl escapes UTF-8 (\303\251)
    *) fail "tray tooltip does not say hidden: ${TIP: -200}" ;;
  esac
fi
click_button "$LEFT" "Reprendre"
wait_audit resumed "$RESUMED" || fail "Reprendre: no resumed record"
log "Masquer mon écran / Reprendre: paused and resumed recorded (screenshot $OUT/banner-paused.png)"
sleep 1.2
click_button "$LEFT" "Terminer"
set +e; wait "$C2"; rc=$?; set -e
[ "$rc" -eq 0 ] || fail "ended session: connect exited $rc, expected 0"
wait_status "no session" || fail "status not idle after Terminer"
for _ in $(seq 1 50); do xdotool search --onlyvisible --name "session en cours" >/dev/null 2>&1 || break; sleep 0.1; done
if xdotool search --onlyvisible --name "session en cours" >/dev/null 2>&1; then fail "banner still shown"; fi
for _ in $(seq 1 30); do kill -0 "$VNC_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$VNC_PID" 2>/dev/null; then fail "x11vnc still runs after the session"; fi
if ls -d "$HELPER_RT"/accord-vnc-* >/dev/null 2>&1; then fail "socket dir left: $(ls "$HELPER_RT")"; fi
log "round 2: ok (exit 0, banner gone, x11vnc gone)"
grep -a "painted .* ms after the request reached" "$WORK/agent.log" | sed 's/^/ui_window: /' >&2 || true

# ---- round 2b: the service restarts; the helper says so, then reconnects ----
log "round 2b: service stopped and restarted under the running helper"
kill -TERM "$SERVICE_PID"; wait "$SERVICE_PID" 2>/dev/null || true
SNI="org.kde.StatusNotifierItem-$HELPER_PID-1"
TIP=
for _ in $(seq 1 50); do
  TIP=$(as_helper busctl --address="$HELPER_BUS" get-property "$SNI" /StatusNotifierItem org.kde.StatusNotifierItem ToolTip 2>&1 || true)
  case "$TIP" in *"indisponible"*) break ;; esac
  sleep 0.1
done
case "$TIP" in
  *"indisponible"*) log "tray while the service is down: assistance à distance indisponible" ;;
  *) fail "tray does not say the service is unreachable: ${TIP: -200}" ;;
esac
kill -0 "$HELPER_PID" 2>/dev/null || fail "the helper died with the service"
"$BIN" service --policy "$POLICY" >"$WORK/service-agent2.log" 2>&1 &
SERVICE_PID=$!
PIDS+=("$SERVICE_PID")
wait_status "listening on" || fail "service did not restart"
wait_helper agent2
MARK=$(wc -l <"$WORK/agent.log")
connect c2b UI-2b --view-only &
C2B=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || fail "no prompt after the service restarted"
sleep 1.0
click_button "$WID" "Refuser"
set +e; wait "$C2B"; rc=$?; set -e
[ "$rc" -eq 3 ] || fail "after the restart, refused prompt: connect exited $rc, expected 3"
log "round 2b: ok (tray said unavailable, helper reconnected, prompt refused: exit 3)"

# ---- round 2c: the helper dies during a session: its server dies with it ----
log "round 2c: helper SIGKILLed during a session"
MARK=$(wc -l <"$WORK/agent.log")
STARTED=$(started_count)
connect c2c UI-2c &
C2C=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || fail "no prompt (round 2c)"
sleep 1.4
click_button "$WID" "Autoriser le contrôle"
wait_status "session in progress" || fail "no session (round 2c)"
wait_started "$STARTED" || fail "the session did not start (round 2c)"
VNC_PID=$(pgrep -u "$HELPER_UID" -x x11vnc | head -n 1) || true
[ -n "$VNC_PID" ] || fail "no x11vnc (round 2c)"
# Gone or a zombie (this container's pid 1 may reap late): no longer runs.
runs() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; case "$st" in Z*) return 1 ;; esac; }
kill -KILL "$HELPER_PID"
T0=$(ms)
for _ in $(seq 1 40); do runs "$VNC_PID" || break; sleep 0.05; done
if runs "$VNC_PID"; then fail "x11vnc survived its helper"; fi
log "x11vnc gone $(( $(ms) - T0 )) ms after its helper was SIGKILLed"
wait_status "no session" || fail "the session outlived its helper"
for _ in $(seq 1 100); do kill -0 "$C2C" 2>/dev/null || break; sleep 0.1; done
kill -0 "$C2C" 2>/dev/null && fail "connect still runs after the helper died"
grep -aq '"why":"ui_lost"' "$WORK/pki/audit.jsonl" || fail "no session_ended ui_lost in the audit log"
log "round 2c: ok (server died with its helper, session ended ui_lost)"

# ---- round 2d: a helper started again where control ran: her next prompt says so ----
log "round 2d: a helper started again after control; the next prompt warns"
setpriv --reuid "$HELPER_UID" --regid "$HELPER_UID" --clear-groups \
  env HOME="$WORK" DBUS_SESSION_BUS_ADDRESS="${HELPER_BUS:-}" XDG_RUNTIME_DIR="$HELPER_RT" \
  "$BIN" ui --policy "$POLICY" >>"$WORK/agent.log" 2>&1 &
HELPER_PID=$!
PIDS+=("$HELPER_PID")
replaced() { grep -a '"event":"helper_replaced"' "$WORK/pki/audit.jsonl" | grep -aq "\"pid\":$HELPER_PID[,}]"; }
for _ in $(seq 1 100); do replaced && break; sleep 0.1; done
replaced || fail "no helper_replaced record for the helper started again (pid $HELPER_PID)"
MARK=$(wc -l <"$WORK/agent.log")
connect c2d UI-2d --view-only &
C2D=$!
WID=$(find_window "demande d'assistance") || true
[ -n "$WID" ] || fail "no prompt (round 2d)"
sleep 1.4
shot "$OUT/prompt-replaced.png"
click_button "$WID" "Refuser"
set +e; wait "$C2D"; rc=$?; set -e
[ "$rc" -eq 3 ] || fail "round 2d: refused prompt, connect exited $rc, expected 3"
log "round 2d: ok (helper_replaced recorded for pid $HELPER_PID; prompt $OUT/prompt-replaced.png; refused: exit 3)"

# ---- round 3: the prompt in English (screenshot), refused by click ----
log "round 3: English prompt"
stop_agent
sed -i 's/^language = "fr"$/language = "en"/' "$POLICY"
start_agent agent-en
wait_helper agent-en
MARK=0
connect c3 UI-3 &
C3=$!
WID=$(find_window "assistance request") || true
[ -n "$WID" ] || fail "no English prompt window"
sleep 1.4
shot "$OUT/prompt-en.png"
for i in $(seq 1 50); do grep -aq 'button "Refuse" centre' "$WORK/agent-en.log" && break; sleep 0.1; done
pos=$(grep -a 'button "Refuse" centre' "$WORK/agent-en.log" | tail -n 1 | sed -E 's/.*centre (-?[0-9]+) (-?[0-9]+).*/\1 \2/')
[ -n "$pos" ] || fail "no position logged for Refuse"
# shellcheck disable=SC2086
xdotool mousemove --window "$WID" $pos click 1
set +e; wait "$C3"; rc=$?; set -e
[ "$rc" -eq 3 ] || fail "English prompt refused: connect exited $rc, expected 3"
log "round 3: ok (exit 3)"

stop_agent
log "screenshots: $OUT/prompt.png $OUT/prompt-control.png $OUT/banner.png $OUT/banner-two-monitors.png $OUT/prompt-en.png"
echo "6 passed, 0 failed"
