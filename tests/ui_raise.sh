#!/usr/bin/env bash
# Real-window test of a question asked DURING a session: the
# session's banner is already on screen, drawn by the real window process
# (`accord ui-window`), when the technician of a view-only session asks for
# control (`accord connect --request-control --session ID`). The question
# must show at once, over the banner, with the first prompt's guards (arm
# delay), and be answered by a real click; the banner stays.
#
# Both ways the clinician's side runs:
#   agent:   `accord agent` (service and helper in one process)
#   service: `accord service` (root, `seat = "single"`) and the `accord ui`
#            helper as an unprivileged user, over ui.sock
# Each with the README's policy (`launch = "auto"`: x11vnc started by
# Accord on a private socket), on Xvfb under openbox.
#
# Rounds, for each way:
#   grant:  view-only session; --request-control; the question is found by
#           its title, over the banner; "Autoriser le contrôle" clicked
#           -> connect exits 0; a PointerEvent sent through the tunnel now
#           moves the X pointer (xdotool getmouselocation)
#   refuse: same, "Refuser" clicked -> connect exits 3; the session stays in
#           view only: a PointerEvent does not move the X pointer
#
# The rounds are built from steps any later question asked during a session
# can reuse (a "continue the session?" re-confirmation, say):
#   start_view_session   a view-only session, its banner, an RFB client
#   answer_question      finds a question by title while the banner shows,
#                        checks it is over the banner, screenshots it,
#                        waits for the arm delay, clicks a button by label
#   pointer_moves X Y    whether the technician's pointer reaches the screen
#
# Screenshots land in $UI_RAISE_OUT (default target/ui-raise):
# question-<way>-<round>.png as the question appears (arming),
# question-<way>-<round>-armed.png just before the click.
# Run as root on Debian 12 (installs what it needs), after `cargo build`.
# Usage: bash tests/ui_raise.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${ACCORD_BIN:-$ROOT/target/debug/accord}
OUT=${UI_RAISE_OUT:-$ROOT/target/ui-raise}
DISP=${UI_RAISE_DISPLAY:-:88}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
PASSED=0

log() { echo "ui_raise: $*" >&2; }
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
for pair in Xvfb:xvfb openbox:openbox xdotool:xdotool xdpyinfo:x11-utils xprop:x11-utils \
            import:imagemagick dbus-launch:dbus-x11 python3:python3 x11vnc:x11vnc; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_pkgs+=("${pair#*:}")
done
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

# ---- a demo PKI and the README's policy (x11vnc launched by Accord) ----
"$BIN" pki demo "$WORK/pki" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AGENT_PORT=$(free_port)
POLICY=$WORK/pki/policy.toml
AUDIT=$WORK/pki/audit.jsonl
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
ARM_DELAY=1.0
PROMPT_TITLE="demande d'assistance"
BANNER_TITLE="session en cours"

export ACCORD_RUN_DIR=$WORK/svc
mkdir -p -m 0755 "$ACCORD_RUN_DIR"
chmod 0755 "$WORK"
id -u accord-clinician >/dev/null 2>&1 || useradd --system --no-create-home \
  --shell /usr/sbin/nologin accord-clinician
HELPER_UID=$(id -u accord-clinician)
as_helper() { setpriv --reuid "$HELPER_UID" --regid "$HELPER_UID" --clear-groups "$@"; }
HELPER_RT=$WORK/run-clinician
mkdir -p "$HELPER_RT"; chown "$HELPER_UID:$HELPER_UID" "$HELPER_RT"; chmod 0700 "$HELPER_RT"
AGENT_RT=$WORK/run-agent
mkdir -p -m 0700 "$AGENT_RT"
export ACCORD_LOG=info,accord::ui::layout=debug

# ---- the display: one 1280x800 monitor, openbox ----
Xvfb "$DISP" -screen 0 1280x800x24 -nolisten tcp -noreset >"$WORK/xvfb.log" 2>&1 &
PIDS+=($!)
export DISPLAY=$DISP
for _ in $(seq 1 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
xdpyinfo >/dev/null 2>&1 || fail "Xvfb did not start"
eval "$(dbus-launch --sh-syntax)"
PIDS+=("$DBUS_SESSION_BUS_PID")
openbox >"$WORK/openbox.log" 2>&1 &
PIDS+=($!)
mapfile -t bus < <(as_helper dbus-daemon --session --fork --print-address=1 --print-pid=1)
HELPER_BUS=${bus[0]}
PIDS+=("${bus[1]}")
sleep 0.5

# ---- the clinician's side, either way ----
# UI_LOG: the log of the process whose windows show (the agent, or the helper).
start_ui() { # start_ui agent|service
  WAY=$1
  UI_LOG=$WORK/ui-$WAY.log
  : >"$UI_LOG"
  if [ "$WAY" = agent ]; then
    env XDG_RUNTIME_DIR="$AGENT_RT" "$BIN" agent --policy "$POLICY" >"$UI_LOG" 2>&1 &
    UI_PIDS=($!)
    PIDS+=("${UI_PIDS[@]}")
    wait_port || fail "the agent did not start listening"
  else
    "$BIN" service --policy "$POLICY" >"$WORK/service.log" 2>&1 &
    local svc=$!
    PIDS+=("$svc")
    wait_port || fail "the service did not start listening"
    setpriv --reuid "$HELPER_UID" --regid "$HELPER_UID" --clear-groups \
      env HOME="$WORK" DBUS_SESSION_BUS_ADDRESS="$HELPER_BUS" XDG_RUNTIME_DIR="$HELPER_RT" \
      "$BIN" ui --policy "$POLICY" >"$UI_LOG" 2>&1 &
    UI_PIDS=($! "$svc")
    PIDS+=("${UI_PIDS[0]}")
    wait_log "$WORK/service.log" "session helper connected" || fail "the helper never connected"
  fi
  sleep 1 # the spare window process connects to the display
}
stop_ui() {
  kill -TERM "${UI_PIDS[@]}" 2>/dev/null || true
  local p
  for p in "${UI_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
wait_port() { # the agent's port accepts connections
  local i
  for i in $(seq 1 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' \
      "$AGENT_PORT" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
wait_log() { # wait_log FILE PATTERN [TENTHS]
  local i
  for i in $(seq 1 "${3:-100}"); do
    grep -aq "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# Lines of the UI log since the mark (the current round's).
since_mark() { tail -n "+$((MARK + 1))" "$UI_LOG"; }
connect() { # connect NAME ARGS... (the technician's certificate)
  local name=$1; shift
  "$BIN" connect "127.0.0.1:$AGENT_PORT" --ca "$WORK/pki/ca.pem" --cert "$WORK/pki/technician.pem" \
    --key "$WORK/pki/technician.key" "$@" >"$WORK/$name.log" 2>&1
}
find_window() { # find_window NAME-REGEX [SECONDS]
  timeout "${2:-20}" xdotool search --sync --onlyvisible --name "$1" 2>/dev/null | head -n 1
}
# Bottom-to-top position in the window manager's stacking order.
stack_index() {
  xprop -root _NET_CLIENT_LIST_STACKING | tr -d ',' | tr ' ' '\n' | grep -n -i "^0x0*$(printf '%x' "$1")$" | cut -d: -f1
}
# Clicks the button whose centre the UI logged (window pixels), for the
# question shown since the mark.
click_button() { # click_button WINDOW LABEL
  local wid=$1 label=$2 pos i
  for i in $(seq 1 50); do
    pos=$(since_mark | grep -a "button \"$label\" centre" | tail -n 1 | sed -E 's/.*centre (-?[0-9]+) (-?[0-9]+).*/\1 \2/' || true)
    [ -n "$pos" ] && break
    sleep 0.1
  done
  [ -n "$pos" ] || fail "no position logged for \"$label\""
  # shellcheck disable=SC2086
  xdotool mousemove --window "$wid" $pos click 1
}
started_count() { grep -ac '"event":"session_started"' "$AUDIT" 2>/dev/null || true; }

# ---- the technician's RFB client through the tunnel ----
# Completes the handshake, asks for one update (drained), then sends a
# PointerEvent for each "X Y" line read from the FIFO.
cat >"$WORK/rfb_pointer.py" <<'EOF'
import socket, struct, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def rd(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise SystemExit("closed")
        b += c
    return b
rd(12); s.sendall(b"RFB 003.008\n")
n = rd(1)[0]; rd(n); s.sendall(b"\x01"); rd(4); s.sendall(b"\x01")
w, h = struct.unpack(">HH", rd(4)); rd(16); rd(struct.unpack(">I", rd(4))[0])
s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
print("connected", w, h, flush=True)
s.settimeout(None)
def drain():
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    print("lost", flush=True)
threading.Thread(target=drain, daemon=True).start()
with open(sys.argv[2]) as commands:
    for line in commands:
        x, y = (int(v) for v in line.split())
        s.sendall(struct.pack(">BBHH", 5, 0, x, y))
        print("sent", x, y, flush=True)
EOF

# A view-only session with its banner and an RFB client: sets SESSION,
# BANNER, TECH (the running connect), RFB_IN (fd 3 writes to the client).
start_view_session() { # start_view_session NAME
  local name=$1 before tunnel i
  before=$(started_count)
  tunnel=$(free_port)
  connect "$name" --ticket "RAISE-$name" --reason "Test" --view-only --listen "127.0.0.1:$tunnel" &
  TECH=$!
  MARK=$(wc -l <"$UI_LOG")
  local wid
  wid=$(find_window "$PROMPT_TITLE") || true
  [ -n "$wid" ] || fail "$name: no first prompt"
  sleep "$ARM_DELAY"; sleep 0.3
  click_button "$wid" "Autoriser l'affichage seul"
  BANNER=$(find_window "$BANNER_TITLE") || true
  [ -n "$BANNER" ] || fail "$name: no banner"
  for i in $(seq 1 100); do [ "$(started_count)" -gt "$before" ] && break; sleep 0.1; done
  [ "$(started_count)" -gt "$before" ] || fail "$name: the session did not start"
  SESSION=$(grep -a '"event":"session_started"' "$AUDIT" | tail -n 1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["session"])')
  grep -a '"event":"session_started"' "$AUDIT" | tail -n 1 | grep -q '"mode":"view"' || fail "$name: not a view-only session"
  pgrep -x x11vnc >/dev/null || fail "$name: no x11vnc launched for the session"
  rm -f "$WORK/rfb.fifo"; mkfifo "$WORK/rfb.fifo"
  python3 "$WORK/rfb_pointer.py" "$tunnel" "$WORK/rfb.fifo" >"$WORK/$name-rfb.out" 2>&1 &
  RFB_PID=$!
  PIDS+=("$RFB_PID")
  exec 3>"$WORK/rfb.fifo"
  wait_log "$WORK/$name-rfb.out" "^connected" || fail "$name: the RFB client did not connect through the tunnel"
  log "$name: view-only session $SESSION, banner $BANNER, x11vnc pid $(pgrep -x x11vnc | head -n 1)"
}
end_view_session() {
  exec 3>&-
  kill "$TECH" 2>/dev/null || true
  wait "$TECH" 2>/dev/null || true
  kill "$RFB_PID" 2>/dev/null || true
  wait "$RFB_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do xdotool search --onlyvisible --name "$BANNER_TITLE" >/dev/null 2>&1 || break; sleep 0.1; done
  for _ in $(seq 1 50); do pgrep -x x11vnc >/dev/null || break; sleep 0.1; done
}

# Whether the technician's pointer reaches the screen: sends a PointerEvent
# to X,Y through the tunnel and watches the X pointer for up to 2 s.
pointer_moves() { # pointer_moves X Y
  local i loc
  echo "$1 $2" >&3
  for i in $(seq 1 20); do
    loc=$(xdotool getmouselocation --shell | grep -E '^(X|Y)=' | tr '\n' ' ')
    [ "$loc" = "X=$1 Y=$2 " ] && return 0
    sleep 0.1
  done
  log "pointer at $loc after a PointerEvent to $1,$2"
  return 1
}

# The question asked during a session: found by its title while the banner
# shows, over the banner, then answered by a click once armed. Generic for
# any question asked while a session runs. Sets QUESTION (its window).
answer_question() { # answer_question TITLE-REGEX BUTTON-LABEL SHOT-NAME [HEADING]
  local title=$1 button=$2 shot=$3 heading=${4:-} t0 t
  t0=$(date +%s%3N)
  QUESTION=$(find_window "$title" 20) || true
  [ -n "$QUESTION" ] || fail "$shot: no window titled \"$title\" while the banner shows"
  t=$(( $(date +%s%3N) - t0 ))
  log "$shot: question window $QUESTION on screen ${t} ms after the request"
  # What the clinician sees at once: the question, its buttons still arming.
  sleep 0.2
  import -window root "$OUT/question-$shot.png"
  xdotool search --onlyvisible --name "$BANNER_TITLE" >/dev/null 2>&1 || fail "$shot: the banner went away with the question"
  # Over the banner (both are "always on top"; the banner is raised again
  # every half second, the question must stay over it).
  local over=0 i
  for i in $(seq 1 30); do
    if [ "$(stack_index "$QUESTION")" -gt "$(stack_index "$BANNER")" ]; then over=$((over + 1)); else
      log "$shot: $(( $(date +%s%3N) - t0 )) ms: the question ($(stack_index "$QUESTION")) under the banner ($(stack_index "$BANNER"))"
      over=0
    fi
    sleep 0.05
  done
  [ "$over" -ge 10 ] || fail "$shot: the question does not stay over the banner"
  if [ -n "$heading" ]; then
    wait_log "$UI_LOG" "shown over the banner" 50 || fail "$shot: the UI did not say it showed the question over the banner"
  fi
  # Armed (the arm delay has passed during the stacking checks).
  sleep "$ARM_DELAY"
  import -window root "$OUT/question-$shot-armed.png"
  click_button "$QUESTION" "$button"
  for _ in $(seq 1 50); do xdotool search --onlyvisible --name "$title" >/dev/null 2>&1 || break; sleep 0.1; done
  if xdotool search --onlyvisible --name "$title" >/dev/null 2>&1; then fail "$shot: the question stayed after \"$button\""; fi
  xdotool search --onlyvisible --name "$BANNER_TITLE" >/dev/null 2>&1 || fail "$shot: the banner went away with the answer"
}

request_control() { # request_control NAME (in the background: sets ASKER)
  connect "$1" --request-control --session "$SESSION" --ticket "RAISE" --reason "Test" &
  ASKER=$!
}
asker_rc() { set +e; wait "$ASKER"; RC=$?; set -e; }

round_grant() {
  log "$WAY/grant: view-only session, control asked, granted by a click"
  start_view_session "$WAY-grant"
  pointer_moves 97 203 && fail "$WAY/grant: the pointer moved in view only"
  MARK=$(wc -l <"$UI_LOG")
  request_control "$WAY-grant-ask"
  answer_question "$PROMPT_TITLE" "Autoriser le contrôle" "$WAY-grant" heading
  asker_rc
  [ "$RC" -eq 0 ] || fail "$WAY/grant: --request-control exited $RC, expected 0: $(cat "$WORK/$WAY-grant-ask.log")"
  grep -aqi "control granted\|contrôle accordé" "$WORK/$WAY-grant-ask.log" || log "note: $(cat "$WORK/$WAY-grant-ask.log")"
  pointer_moves 613 417 || fail "$WAY/grant: the technician's pointer does not move the X pointer after control was granted"
  log "$WAY/grant: ok (exit 0, the technician's PointerEvent moved the X pointer to 613,417)"
  end_view_session
  PASSED=$((PASSED + 1))
}

round_refuse() {
  log "$WAY/refuse: view-only session, control asked, refused by a click"
  start_view_session "$WAY-refuse"
  MARK=$(wc -l <"$UI_LOG")
  request_control "$WAY-refuse-ask"
  answer_question "$PROMPT_TITLE" "Refuser" "$WAY-refuse"
  asker_rc
  [ "$RC" -eq 3 ] || fail "$WAY/refuse: --request-control exited $RC, expected 3: $(cat "$WORK/$WAY-refuse-ask.log")"
  pointer_moves 321 345 && fail "$WAY/refuse: the pointer moved after control was refused"
  kill -0 "$TECH" 2>/dev/null || fail "$WAY/refuse: the session ended with the refusal"
  grep -a '"decision"' "$AUDIT" | tail -n 1 | grep -q 'refused' || log "note: last decision $(grep -a '"decision"' "$AUDIT" | tail -n 1)"
  log "$WAY/refuse: ok (exit 3, still view only: the pointer did not move)"
  end_view_session
  PASSED=$((PASSED + 1))
}

for way in agent service; do
  start_ui "$way"
  round_grant
  round_refuse
  stop_ui
done

log "screenshots: $(ls "$OUT"/question-*.png | tr '\n' ' ')"
echo "$PASSED passed, 0 failed"
