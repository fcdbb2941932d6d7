#!/bin/bash
# Boot test: the built .deb installed and run under a real
# systemd and a real logind, in a Debian 12 container booted with
# systemd-nspawn (no machined, no Docker):
#
#   1. accord.service runs as user accord with its sandbox applied
#      (NoNewPrivs, seccomp, no capability, read-only file system), exposure
#      <= 2.0 in `systemd-analyze security`, and (checked at the very end)
#      nothing denied by the sandbox in its journal
#   2. no graphical session: `accord connect` exits 8 (no_user)
#   3. a seat0 X11 session of user clin (su -l from a system unit: logind
#      session, user manager), Xvfb + openbox; the helper `accord ui`
#      (a) started inside the session: the prompt is found by its title and
#          answered by a real click; `accord end` ends the session
#      (b) started as GNOME/Plasma do: systemd-xdg-autostart-generator's unit
#          from the package's /etc/xdg/autostart/accord.desktop, under
#          user@UID.service (in no logind session): it must be asked too
#   4. SetLockedHint by the session's user ends a session (screen_locked);
#      activating another user's seat0 session ends one (user_switched) and
#      the next request asks the new user
#   5. `systemctl restart accord` mid-session: agent_stopped, the helpers
#      reconnect by themselves, the next request is asked
#   6. `apt-get purge accord` under the running systemd stops and removes the
#      service
#
# usage: tests/boot/boot-test.sh target/debian/accord_X_ARCH.deb   (make boot-test)
# env:   ACCORD_TEST_CACHE (/var/cache/accord-tests)  cached root tarballs
#        BOOT_TEST_WORK    (target/boot-test)         root, logs, screenshots
#        BOOT_MIRROR       (http://deb.debian.org/debian)
#        BOOT_TEST_KEEP_GOING=1  a failed check is reported and the test goes
#                          on where it can (exit 1 at the end)
# Must run as root. Stops the container and removes the root on exit, even on
# failure. Screenshots stay in $BOOT_TEST_WORK/shots.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
[ $# = 1 ] || { echo "usage: $0 accord_X_ARCH.deb" >&2; exit 2; }
DEB=$(readlink -f "$1")
WORK=$(readlink -m "${BOOT_TEST_WORK:-target/boot-test}")
BOOT_WORK=$WORK
ROOT=$WORK/root
SHOTS=$WORK/shots
KEEP_GOING=${BOOT_TEST_KEEP_GOING:-}
FAILED=()

# shellcheck source=tests/boot/root.sh
. "$HERE/root.sh"
# shellcheck source=tests/boot/container.sh
. "$HERE/container.sh"
boot_clock boot-test
B=/var/tmp/boot          # inside the container
HB=$ROOT$B               # the same, from the host

# what a failure shows: the service's journal, the audit log, the helpers' logs
evidence() {
    [ -n "$PID1" ] && [ -d "/proc/$PID1" ] || return 0
    echo "---- journalctl -u accord (last 40)" >&2
    in_c journalctl -u accord --no-pager -n 40 -o short-precise >&2 2>&1 || true
    echo "---- accord log show (last 15)" >&2
    in_c accord log show /var/lib/accord/audit.jsonl 2>&1 | tail -n 15 >&2 || true
    local f
    for f in "$HB"/*/ui.log; do
        [ -f "$f" ] && { echo "---- $f (last 15)" >&2; grep -av 'layout' "$f" | tail -n 15 >&2; }
    done
    echo "---- helpers started by XDG autostart (last 15)" >&2
    in_c journalctl --no-pager -n 15 -o short-precise _SYSTEMD_USER_UNIT=app-accord@autostart.service >&2 2>&1 || true
    echo "---- loginctl" >&2
    in_c loginctl list-sessions --no-legend >&2 2>&1 || true
}
die() {
    echo "boot-test: FAIL: $*" >&2
    evidence
    exit 1
}
# A check whose failure leaves the rest meaningful: with BOOT_TEST_KEEP_GOING=1
# it is recorded and the test goes on.
fail_check() {
    if [ -n "$KEEP_GOING" ]; then
        echo "boot-test: FAIL (going on): $*" >&2
        evidence
        FAILED+=("$*")
    else
        die "$*"
    fi
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, systemd-nspawn, nsenter)"
[ -f "$DEB" ] || die "no such .deb: $1"
for t in systemd-nspawn debootstrap nsenter zstd findmnt; do
    command -v "$t" >/dev/null || die "$t not found (make boot-test installs systemd-container, debootstrap, zstd)"
done

cleanup() {
    local rc=$?
    set +e
    boot_container_stop 15
    boot_kill_leftovers
    boot_remove_root
    boot_total "$rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the root --------------------------------------------------------------
mkdir -p "$WORK" "$SHOTS"
rm -f "$SHOTS"/*.png
TARBALL=$(boot_root_tarball x11 "${BOOT_X11_PKGS[@]}") || die "could not build the root"
lap "root (cache: $(basename "$TARBALL"))"
boot_root_unpack "$TARBALL" "$ROOT" || die "could not unpack $TARBALL"
boot_root_setup accord-boot "$DEB"
install -m 755 "$HERE/session.sh" "$HB/session.sh"
cp "$HERE/boot-session@.service" "$ROOT/etc/systemd/system/"
cp "$HERE/boot-desktop.target" "$ROOT/etc/systemd/user/"
lap "unpack root"

# --- 2. boot -----------------------------------------------------------------------
boot_container_start accord-boot
ok "container booted (systemd $(in_c systemctl --version | head -n1 | awk '{print $2}'), pid 1 = host pid $PID1, logind running)"
lap "boot"

# --- 3. install the package --------------------------------------------------------
boot_install_deb "$DEB"
VERSION=$(in_c dpkg-query -W -f '${Version}' accord)
ok "apt-get install $(basename "$DEB") under systemd (accord $VERSION; $(grep -c '^Setting up' "$WORK/install.log") packages set up)"
in_c systemctl is-enabled --quiet accord || die "accord.service not enabled by the package"
lap "install"

# The demo PKI where the shipped policy looks (README.Debian), as IT would.
boot_demo_pki
boot_free_port
POLICY=$ROOT/etc/accord/policy.toml
sed -i -e "s/^address = .*/address = \"127.0.0.1:$PORT\"/" \
    -e 's/^max_prompts_per_technician_per_hour = .*/max_prompts_per_technician_per_hour = 100/' \
    -e 's/^language = .*/language = "fr"/' "$POLICY"
grep -q "^address = \"127.0.0.1:$PORT\"" "$POLICY" && grep -q '^language = "fr"' "$POLICY" \
    || die "could not edit /etc/accord/policy.toml"
in_c accord policy check /etc/accord/policy.toml >"$WORK/policy-check.log" 2>&1 \
    || { cat "$WORK/policy-check.log" >&2; die "accord policy check with the demo PKI"; }
in_c systemctl restart accord
wait_for 20 listening || die "accord.service does not listen on 127.0.0.1:$PORT after restart"
ok "demo PKI in /etc/accord (agent.key root:accord 0640), service restarted, listening on 127.0.0.1:$PORT"

# --- check 1: the service and its sandbox --------------------------------------------
eval "$(in_c systemctl show -p MainPID -p User -p ActiveState accord | sed 's/^/SVC_/')"
[ "$SVC_ActiveState" = active ] && [ "$SVC_User" = accord ] && [ "$SVC_MainPID" != 0 ] \
    || die "accord.service: ActiveState=$SVC_ActiveState User=$SVC_User MainPID=$SVC_MainPID"
PSLINE=$(in_c ps -o user=,args= -p "$SVC_MainPID")
[ "$(echo "$PSLINE" | awk '{print $1}')" = accord ] || die "MainPID $SVC_MainPID runs as: $PSLINE"
in_c cat "/proc/$SVC_MainPID/status" >"$WORK/service-status.txt"
st() { awk -v k="$1:" '$1 == k { print $2 }' "$WORK/service-status.txt"; }
[ "$(st NoNewPrivs)" = 1 ] || die "NoNewPrivs $(st NoNewPrivs), expected 1"
[ "$(st Seccomp)" = 2 ] || die "Seccomp $(st Seccomp), expected 2 (filter)"
[ "$(st CapEff)" = 0000000000000000 ] && [ "$(st CapBnd)" = 0000000000000000 ] \
    || die "CapEff $(st CapEff) CapBnd $(st CapBnd), expected none"
in_c cat "/proc/$SVC_MainPID/mountinfo" >"$WORK/service-mounts.txt"
# mount options of the mount a path is on (the last, longest mount point above it)
mnt_opts() {
    awk -v p="$1" '{ m = $5; if (p == m || m == "/" || index(p, m "/") == 1) if (length(m) >= l) { l = length(m); o = $6 } }
        END { print o }' "$WORK/service-mounts.txt"
}
mnt_exact() { awk -v m="$1" '$5 == m { o = $6 } END { print o }' "$WORK/service-mounts.txt"; }
for m in / /usr/bin /etc/accord /var /var/cache; do
    case "$(mnt_opts "$m")" in ro|ro,*) ;; *) die "ProtectSystem=strict: $m is on a '$(mnt_opts "$m")' mount in the service's namespace, expected ro" ;; esac
done
case "$(mnt_opts /var/lib/accord)" in rw|rw,*) ;; *) die "/var/lib/accord is not writable for the service: '$(mnt_opts /var/lib/accord)'" ;; esac
case "$(mnt_opts /run/accord)" in rw|rw,*) ;; *) die "/run/accord is not writable for the service: '$(mnt_opts /run/accord)'" ;; esac
for m in /home /root /run/user /tmp /var/tmp; do # ProtectHome=yes, PrivateTmp=yes: mounted over
    [ -n "$(mnt_exact "$m")" ] || die "no mount on $m in the service's namespace (ProtectHome/PrivateTmp not applied)"
done
in_c systemd-analyze security accord.service >"$WORK/security.txt" 2>&1 || true
EXPO=$(sed -n 's/.*Overall exposure level for accord.service: \([0-9.]*\).*/\1/p' "$WORK/security.txt")
[ -n "$EXPO" ] || { cat "$WORK/security.txt" >&2; die "no exposure level from systemd-analyze security"; }
awk -v s="$EXPO" 'BEGIN { exit !(s <= 2.0) }' || { grep -E '^✗' "$WORK/security.txt" >&2; die "exposure $EXPO above 2.0"; }
ok "accord.service active, MainPID $SVC_MainPID user accord; NoNewPrivs 1, Seccomp 2, CapEff/CapBnd 0; / /usr /etc /var read-only, /var/lib/accord /run/accord rw; /home /root /run/user /tmp /var/tmp mounted over; exposure $EXPO"
lap "service + sandbox"

# --- accord connect, the technician's side (root in the container, no login) --------
# connect NAME TICKET [ARGS]: runs in the background, $CPID its pid, log $WORK/NAME.log
connect() {
    local name=$1 ticket=$2; shift 2
    in_c timeout 150 accord connect "127.0.0.1:$PORT" --ca $B/pki/ca.pem --cert $B/pki/technician.pem \
        --key $B/pki/technician.key --ticket "$ticket" --reason "boot-test" "$@" >"$WORK/$name.log" 2>&1 &
    CPID=$!
}
# connect_rc PID SECONDS: its exit code in $rc ("timeout" if still running);
# not in $(...): only this shell can wait for its children
connect_rc() {
    local _
    for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then rc=timeout; return 0; fi
    rc=0; wait "$1" || rc=$?
}
audit_has() { in_c accord log show --json /var/lib/accord/audit.jsonl 2>/dev/null | grep -c "$1" || true; }
journal_count() { in_c journalctl -u accord -o cat --no-pager 2>/dev/null | grep -c "$1" || true; }

# --- check 2: nobody at the screen -----------------------------------------------------
connect c2 BOOT-2
connect_rc "$CPID" 60
[ "$rc" = 8 ] || { cat "$WORK/c2.log" >&2; die "no graphical session: connect exited $rc, expected 8 (no_user)"; }
ok "no graphical session: accord connect exits 8 (no_user)"
lap "check 2"

# --- seat0 X11 sessions ----------------------------------------------------------------------
# A free X display number: the container shares the host's network namespace,
# so its abstract X sockets (@/tmp/.X11-unix/XN) are the host's too.
free_display() {
    local n
    for n in $(seq "$1" 199); do
        grep -q "@/tmp/.X11-unix/X$n\$" /proc/net/unix || { echo "$n"; return 0; }
    done
    return 1
}
declare -A DISP SESS UIDOF
start_session() { # USER DISPLAY: the user's login on seat0; sets SESS[USER]
    local u=$1 d=$2
    in_c id -u "$u" >/dev/null 2>&1 || in_c useradd -m -s /bin/bash "$u"
    UIDOF[$u]=$(in_c id -u "$u")
    mkdir -p "$HB/$u"; echo "$d" >"$HB/$u/display"; rm -f "$HB/$u/ready"
    in_c chown -R "$u:$u" "$B/$u"
    DISP[$u]=$d
    in_c systemctl start "boot-session@$u.service"
    wait_for 30 test -e "$HB/$u/ready" \
        || { cat "$HB/$u/session.log" "$HB/$u/xvfb.log" >&2 2>/dev/null; die "$u's session (Xvfb :$d, openbox) not ready in 30 s"; }
    local s
    s=$(in_c loginctl list-sessions --no-legend | awk -v u="$u" '$3 == u { print $1 }' | head -n1)
    [ -n "$s" ] || die "no logind session for $u: $(in_c loginctl list-sessions --no-legend)"
    SESS[$u]=$s
}
session_prop() { in_c loginctl show-session "$1" -p "$2" --value; }
# in_session USER COMMAND: runs COMMAND (sh) as a child of USER's session
in_session() {
    timeout 10 sh -c 'printf "%s\n" "$1" >"$2"' sh "$2" "$HB/$1/run" || die "cannot reach $1's session"
}
# the helper inside USER's session (case a)
start_ui_in_session() {
    local u=$1
    rm -f "$HB/$u/ui.pid"
    in_session "$u" "echo \$\$ >$B/$u/ui.pid; exec env ACCORD_LOG=info,accord::ui::layout=debug accord ui >>$B/$u/ui.log 2>&1"
    wait_for 10 test -s "$HB/$u/ui.pid" || die "the helper did not start in $u's session"
}
stop_ui_in_session() {
    local u=$1
    [ -s "$HB/$u/ui.pid" ] && in_c kill "$(cat "$HB/$u/ui.pid")" 2>/dev/null || true
}
helper_connected() { # COUNT-BEFORE: a new "session helper connected" line
    [ "$(journal_count 'session helper connected')" -gt "$1" ]
}
# ui_log USER: what the user's helper logged (its file, or its unit's journal)
ui_log() {
    if [ "${UI_KIND[$1]:-session}" = autostart ]; then
        in_c journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=app-accord@autostart.service _UID="${UIDOF[$1]}" 2>/dev/null
    else
        cat "$HB/$1/ui.log" 2>/dev/null
    fi
}
declare -A UI_KIND
x_in() { local u=$1; shift; in_c env DISPLAY=":${DISP[$u]}" "$@"; }
find_prompt() { # USER: the prompt window's id on USER's display
    local w
    for _ in $(seq 100); do
        w=$(x_in "$1" xdotool search --onlyvisible --name "demande d'assistance" 2>/dev/null | head -n1) || true
        [ -n "$w" ] && { echo "$w"; return 0; }
        kill -0 "$CPID" 2>/dev/null || return 1   # connect already answered
        sleep 0.2
    done
    return 1
}
# click USER WINDOW LABEL MARK: clicks the button whose centre the helper
# logged (lines after MARK of its log), after the prompt's arm delay
click() {
    local u=$1 w=$2 label=$3 mark=$4 pos=''
    for _ in $(seq 50); do
        pos=$(ui_log "$u" | tail -n "+$((mark + 1))" | grep -a "button \"$label\" centre" | tail -n1 \
            | sed -E 's/.*centre (-?[0-9]+) (-?[0-9]+).*/\1 \2/') || true
        [ -n "$pos" ] && break
        sleep 0.1
    done
    [ -n "$pos" ] || die "$u's helper logged no position for \"$label\""
    # shellcheck disable=SC2086
    x_in "$u" xdotool mousemove --window "$w" $pos click 1
}
shot() { # USER NAME: screenshot of USER's display to $SHOTS/NAME.png
    x_in "$1" import -window root "$B/$2.png" && mv "$HB/$2.png" "$SHOTS/$2.png"
}
ui_mark() { ui_log "$1" | wc -l; }
# ask USER NAME TICKET LABEL [connect args]: a request, the prompt on USER's
# display, a click on LABEL 1.3 s after it showed (the arm delay is 1 s)
ask_and_click() {
    local u=$1 name=$2 ticket=$3 label=$4 mark w; shift 4
    mark=$(ui_mark "$u")
    connect "$name" "$ticket" "$@"
    w=$(find_prompt "$u") || return 1
    sleep 1.3
    [ -e "$SHOTS/$name-prompt.png" ] || shot "$u" "$name-prompt"
    click "$u" "$w" "$label" "$mark"
}
# `accord log show --json`: one row per request, "started" once its session
# started, "ended" the session_ended reason
started_count() { audit_has '"started":'; }
wait_started() { local b=$1 _; for _ in $(seq 100); do [ "$(started_count)" -gt "$b" ] && return 0; sleep 0.2; done; return 1; }
# decided TICKET: the audit's decision on that request ("accepted view", "refused (…)")
decided() {
    in_c accord log show --json /var/lib/accord/audit.jsonl 2>/dev/null | grep -F "\"ticket\":\"$1\"" | tail -n1 \
        | sed -n 's/.*"decided":"\([^"]*\)".*/\1/p'
}
expect_decided() { # TICKET PREFIX: the click was recorded as the button clicked
    local d; d=$(decided "$1")
    case "$d" in "$2"*) ;; *) die "$1: the audit log says '$d', expected '$2…' (wrong button clicked?)" ;; esac
}
ended_count() { audit_has "\"ended\":\"$1\""; }

# --- check 3a: the helper inside clin's session ------------------------------------------
D1=$(free_display 151) || die "no free X display number"
start_session clin "$D1"
S1=${SESS[clin]}
[ "$(session_prop "$S1" Active)" = yes ] && [ "$(session_prop "$S1" Seat)" = seat0 ] \
    && [ "$(session_prop "$S1" Type)" = x11 ] && [ "$(session_prop "$S1" Class)" = user ] \
    || die "clin's session $S1: $(in_c loginctl show-session "$S1" -p Active -p Seat -p Type -p Class -p State | tr '\n' ' ')"
ok "seat0 session $S1 of clin: active, type x11, class user; Xvfb :$D1 + openbox"
lap "clin's session"
N=$(journal_count 'session helper connected')
start_ui_in_session clin
wait_for 20 helper_connected "$N" || die "clin's in-session helper never connected to the service"
STARTED=$(started_count)
ask_and_click clin c3a BOOT-3A "Autoriser l'affichage seul" || die "no prompt on clin's display for the in-session helper: $(cat "$WORK/c3a.log")"
wait_started "$STARTED" || die "no session_started after the click (connect: $(cat "$WORK/c3a.log"))"
expect_decided BOOT-3A "accepted view"
in_c accord status >"$WORK/status-3a.txt" 2>&1 || true
grep -qi "view" "$WORK/status-3a.txt" || note "accord status during the view-only session: $(tr '\n' ' ' <"$WORK/status-3a.txt")"
shot clin c3a-session
in_c accord end >"$WORK/end-3a.log" 2>&1 || die "accord end (root): $(cat "$WORK/end-3a.log")"
connect_rc "$CPID" 20
[ "$rc" = 0 ] || die "session ended by accord end: connect exited $rc, expected 0: $(cat "$WORK/c3a.log")"
ok "3a: helper in clin's session asked; prompt found by title, \"Autoriser l'affichage seul\" clicked; view-only session ran; accord end: connect exit 0"
lap "check 3a"

# --- check 3b: the helper as XDG autostart starts it (user@UID.service) -----------------------
stop_ui_in_session clin
C_UID=${UIDOF[clin]}
as_user() { # USER COMMAND...: with the user manager's bus (systemctl --user)
    local u=$1; shift
    in_c setpriv --reuid "${UIDOF[$u]}" --regid "${UIDOF[$u]}" --init-groups \
        env HOME="/home/$u" XDG_RUNTIME_DIR="/run/user/${UIDOF[$u]}" \
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/${UIDOF[$u]}/bus" "$@"
}
wait_for 20 as_user clin systemctl --user is-system-running --quiet \
    || as_user clin systemctl --user is-system-running >/dev/null 2>&1 \
    || note "clin's user manager: $(as_user clin systemctl --user is-system-running 2>&1)"
as_user clin systemctl --user set-environment DISPLAY=":$D1" XDG_SESSION_TYPE=x11 \
    ACCORD_LOG=info,accord::ui::layout=debug || die "systemctl --user set-environment as clin"
as_user clin systemctl --user daemon-reload
N=$(journal_count 'session helper connected')
as_user clin systemctl --user start boot-desktop.target \
    || die "systemctl --user start boot-desktop.target (pulls xdg-desktop-autostart.target): $(as_user clin systemctl --user status xdg-desktop-autostart.target 2>&1 | tail -n 5)"
as_user clin systemctl --user list-units --all --no-legend --plain 'app-accord*' >"$WORK/autostart-units.txt" 2>&1 || true
grep -q '^app-accord@autostart.service' "$WORK/autostart-units.txt" \
    || die "no app-accord@autostart.service from systemd-xdg-autostart-generator: $(cat "$WORK/autostart-units.txt")"
UI_KIND[clin]=autostart
wait_for 20 helper_connected "$N" \
    || die "the autostarted helper never connected: $(as_user clin systemctl --user status app-accord@autostart.service 2>&1 | tail -n 8)"
AUTO_PID=$(as_user clin systemctl --user show -p MainPID --value app-accord@autostart.service)
AUTO_SESSION=$(in_c busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager GetSessionByPID u "$AUTO_PID" 2>&1 || true)
note "autostarted helper pid $AUTO_PID ($(in_c cat "/proc/$AUTO_PID/cgroup" 2>/dev/null | tail -n1)); logind GetSessionByPID: $AUTO_SESSION"
ok "3b setup: app-accord@autostart.service ($(awk '{print $3"/"$4}' "$WORK/autostart-units.txt" | head -n1)) generated from /etc/xdg/autostart/accord.desktop, its helper connected"
STARTED=$(started_count)
if ask_and_click clin c3b BOOT-3B "Refuser"; then
    connect_rc "$CPID" 20
    if [ "$rc" = 3 ]; then
        ok "3b: the autostarted helper (user@$C_UID.service, no logind session) asked; \"Refuser\" clicked: connect exit 3"
    else
        fail_check "3b: the autostarted helper's prompt was refused by click, but connect exited $rc: $(cat "$WORK/c3b.log")"
    fi
else
    connect_rc "$CPID" 30
    fail_check "3b: the helper started by XDG autostart (user@$C_UID.service, in no logind session) was not asked: connect exited $rc$( [ "$rc" = 8 ] && echo ' (no_user)'): $(tail -n 2 "$WORK/c3b.log" | tr '\n' ' ')"
fi
as_user clin systemctl --user stop app-accord@autostart.service boot-desktop.target >/dev/null 2>&1 || true
UI_KIND[clin]=session
lap "check 3b"

# --- check 4: screen locked, user switched -------------------------------------------------------
N=$(journal_count 'session helper connected')
start_ui_in_session clin
wait_for 20 helper_connected "$N" || die "clin's in-session helper did not connect again"
STARTED=$(started_count); LOCKED=$(ended_count screen_locked)
ask_and_click clin c4 BOOT-4 "Autoriser le contrôle" || die "no prompt for the lock test: $(cat "$WORK/c4.log")"
wait_started "$STARTED" || die "no session_started (lock test): $(cat "$WORK/c4.log")"
expect_decided BOOT-4 "accepted control"
in_session clin "busctl call org.freedesktop.login1 /org/freedesktop/login1/session/auto org.freedesktop.login1.Session SetLockedHint b true >$B/clin/lock.log 2>&1"
wait_for 10 sh -c "[ \"\$(nsenter -t $PID1 -a loginctl show-session $S1 -p LockedHint --value)\" = yes ]" \
    || die "SetLockedHint true by clin did not lock $S1: $(cat "$HB/clin/lock.log")"
connect_rc "$CPID" 20
[ "$rc" = 0 ] || die "locked screen: connect exited $rc, expected 0: $(cat "$WORK/c4.log")"
[ "$(ended_count screen_locked)" -gt "$LOCKED" ] || die "no session_ended screen_locked in the audit log"
ok "4: SetLockedHint(true) by clin (busctl in the session) ended the session: session_ended screen_locked, connect exit 0 ($(tail -n1 "$WORK/c4.log"))"
in_session clin "busctl call org.freedesktop.login1 /org/freedesktop/login1/session/auto org.freedesktop.login1.Session SetLockedHint b false >$B/clin/unlock.log 2>&1"
wait_for 10 sh -c "[ \"\$(nsenter -t $PID1 -a loginctl show-session $S1 -p LockedHint --value)\" = no ]" \
    || die "SetLockedHint false did not unlock $S1"
lap "check 4 lock"

D2=$(free_display $((D1 + 1))) || die "no second free X display number"
N=$(journal_count 'session helper connected')
start_session clin2 "$D2"
S2=${SESS[clin2]}
note "clin2's session $S2 on seat0: Active=$(session_prop "$S2" Active); clin's $S1: Active=$(session_prop "$S1" Active)"
start_ui_in_session clin2
wait_for 20 helper_connected "$N" || die "clin2's helper never connected"
if [ "$(session_prop "$S1" Active)" != yes ]; then
    in_c loginctl activate "$S1" || die "loginctl activate $S1"
    wait_for 10 sh -c "[ \"\$(nsenter -t $PID1 -a loginctl show-session $S1 -p Active --value)\" = yes ]" || die "$S1 not active again"
fi
STARTED=$(started_count); SWITCHED=$(ended_count user_switched)
ask_and_click clin c4s BOOT-4S "Autoriser le contrôle" || die "no prompt on clin's display before the switch: $(cat "$WORK/c4s.log")"
wait_started "$STARTED" || die "no session_started (switch test): $(cat "$WORK/c4s.log")"
expect_decided BOOT-4S "accepted control"
in_c loginctl activate "$S2" || die "loginctl activate $S2"
connect_rc "$CPID" 20
[ "$rc" = 0 ] || die "user switch: connect exited $rc, expected 0: $(cat "$WORK/c4s.log")"
[ "$(ended_count user_switched)" -gt "$SWITCHED" ] || die "no session_ended user_switched in the audit log"
[ "$(session_prop "$S2" Active)" = yes ] || die "$S2 not active after loginctl activate"
ok "4: loginctl activate $S2 (clin2) ended clin's session: session_ended user_switched, connect exit 0"
ask_and_click clin2 c4n BOOT-4N "Refuser" || die "the request after the switch did not reach clin2's display: $(cat "$WORK/c4n.log")"
connect_rc "$CPID" 20
[ "$rc" = 3 ] || die "after the switch, refused by clin2: connect exited $rc, expected 3"
expect_decided BOOT-4N "refused"
if x_in clin xdotool search --onlyvisible --name "demande d'assistance" >/dev/null 2>&1; then
    die "the request after the switch was shown on clin's display too"
fi
ok "4: the next request asked clin2 (prompt on :$D2, none on :$D1), \"Refuser\": connect exit 3"
lap "check 4 switch"

# --- check 5: service restarted mid-session -------------------------------------------------------
STARTED=$(started_count); STOPPED=$(ended_count agent_stopped)
ask_and_click clin2 c5 BOOT-5 "Autoriser le contrôle" || die "no prompt before the restart: $(cat "$WORK/c5.log")"
wait_started "$STARTED" || die "no session_started (restart test): $(cat "$WORK/c5.log")"
expect_decided BOOT-5 "accepted control"
N=$(journal_count 'session helper connected')
in_c systemctl restart accord || die "systemctl restart accord"
connect_rc "$CPID" 20
[ "$(ended_count agent_stopped)" -gt "$STOPPED" ] || die "no session_ended agent_stopped after systemctl restart (connect exit $rc)"
ok "5: systemctl restart accord mid-session: session_ended agent_stopped, connect exit $rc ($(tail -n1 "$WORK/c5.log"))"
wait_for 30 listening || die "the service does not listen after the restart"
wait_for 30 sh -c "[ \$(nsenter -t $PID1 -a journalctl -u accord -o cat --no-pager | grep -c 'session helper connected') -ge $((N + 2)) ]" \
    || die "the two helpers did not both reconnect within 30 s of the restart"
ask_and_click clin2 c5n BOOT-5N "Refuser" || die "no prompt after the restart: $(cat "$WORK/c5n.log")"
connect_rc "$CPID" 20
[ "$rc" = 3 ] || die "after the restart, refused: connect exited $rc, expected 3"
expect_decided BOOT-5N "refused"
ok "5: both helpers reconnected by themselves; the next request was asked (refused: exit 3)"
lap "check 5"

# --- check 1 (end): nothing denied by the sandbox ----------------------------------------------------
in_c journalctl -u accord -o short-precise --no-pager >"$WORK/journal-accord.txt" 2>&1 || true
DENIED=$(grep -aiE 'Permission denied|Operation not permitted|EPERM|Read-only file system|seccomp|denied|audit\[' "$WORK/journal-accord.txt" || true)
if [ -n "$DENIED" ]; then
    echo "$DENIED" | head -n 20 >&2
    fail_check "1: the service's journal has sandbox denials (above)"
else
    ok "1: journalctl -u accord ($(wc -l <"$WORK/journal-accord.txt") lines): nothing denied by the sandbox"
fi
in_c accord log verify /var/lib/accord/audit.jsonl >"$WORK/log-verify.txt" 2>&1 \
    || { cat "$WORK/log-verify.txt" >&2; die "accord log verify /var/lib/accord/audit.jsonl"; }
ok "audit log chain intact: $(head -n1 "$WORK/log-verify.txt")"

# --- check 6: purge under the running systemd ----------------------------------------------------------
in_c apt-get purge -y -q accord >"$WORK/purge.log" 2>&1 || { tail -n 20 "$WORK/purge.log" >&2; die "apt-get purge accord"; }
rc=0; in_c systemctl status accord >"$WORK/status-after-purge.txt" 2>&1 || rc=$?
[ "$rc" = 4 ] || { cat "$WORK/status-after-purge.txt" >&2; die "systemctl status accord after purge: exit $rc, expected 4 (no such unit)"; }
[ -z "$(in_c pgrep -u accord || true)" ] || die "processes of user accord left after purge: $(in_c ps -o pid,args -u accord)"
[ -z "$(in_c pgrep -f '^/usr/bin/accord service|^accord service' || true)" ] || die "accord service still runs after purge"
LEFT_UI=$(in_c pgrep -c -f '^accord ui' || true)
ok "6: apt-get purge stopped accord.service and removed it (systemctl status: exit 4, not found); no process of user accord left${LEFT_UI:+; $LEFT_UI session helper(s) still run from the deleted binary until logout}"
lap "check 6"

if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'boot-test: FAILED: %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "boot-test: PASS (screenshots in $SHOTS)"
