#!/usr/bin/env bash
# The service's systemd unit (installer/deb/accord.service):
#   - `systemd-analyze security --offline=yes` prints its exposure level and
#     fails when it is above 2.0 (--threshold counts tenths: 20 = 2.0);
#   - `systemd-analyze verify` finds nothing wrong with it. verify insists that
#     ExecStart's program exists, so it runs on a copy whose ExecStart points at
#     the built binary ($ACCORD_BIN, else target/debug/accord), and with
#     --man=no (the man page is checked installed, by installer/deb-test.sh).
# No systemd as PID 1 needed. Skipped only when systemd-analyze is missing and
# ACCORD_REQUIRE_PEERS is unset.
# Usage: bash tests/systemd_unit.sh   (make e2e runs it)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
UNIT=$ROOT/installer/deb/accord.service
MAX_TENTHS=20
log() { echo "systemd_unit: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
  [ -z "${ACCORD_REQUIRE_PEERS:-}" ] || fail "systemd-analyze not found (apt-get install systemd) and ACCORD_REQUIRE_PEERS is set"
  log "SKIP: systemd-analyze not found (apt-get install systemd)"
  exit 0
fi
[ -f "$UNIT" ] || fail "missing $UNIT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---- exposure ----
rc=0
systemd-analyze security --offline=yes --threshold=$MAX_TENTHS "$UNIT" > "$WORK/security.txt" 2>&1 || rc=$?
score=$(sed -n 's/.*Overall exposure level for accord\.service: \([0-9.]*\).*/\1/p' "$WORK/security.txt")
[ -n "$score" ] || { cat "$WORK/security.txt" >&2; fail "no exposure level in systemd-analyze's output (exit $rc)"; }
log "exposure level of accord.service: $score (at most $((MAX_TENTHS / 10)).$((MAX_TENTHS % 10)))"
if [ "$rc" != 0 ]; then
  grep -E '^✗' "$WORK/security.txt" >&2 || true
  fail "exposure $score is above $((MAX_TENTHS / 10)).$((MAX_TENTHS % 10)) (systemd-analyze exit $rc)"
fi
# Belt and braces: compare the printed figure too (an older systemd-analyze
# without --threshold would exit 0 whatever the score).
awk -v s="$score" -v m="$MAX_TENTHS" 'BEGIN { exit !(s * 10 <= m + 0.001) }' \
  || fail "exposure $score is above the limit"

# ---- what the lines must keep (each one weighs in the score or in safety) ----
for line in User=accord Group=accord 'ExecStart=/usr/bin/accord service' StateDirectory=accord \
            StateDirectoryMode=0700 RuntimeDirectory=accord RuntimeDirectoryMode=0755 \
            CapabilityBoundingSet= NoNewPrivileges=yes ProtectSystem=strict UMask=0077; do
  grep -qxF "$line" "$UNIT" || fail "accord.service lacks the line '$line'"
done
# PrivateUsers=yes would map every other user to 65534 and blind SO_PEERCRED.
if grep -qiE '^PrivateUsers=(yes|true|1|on|self|identity)' "$UNIT"; then
  fail "accord.service must not set PrivateUsers (SO_PEERCRED would report nobody for every session)"
fi

# ---- verify ----
BIN=${ACCORD_BIN:-$ROOT/target/debug/accord}
[ -x "$BIN" ] || BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/accord
if [ ! -x "$BIN" ]; then
  [ -z "${ACCORD_REQUIRE_PEERS:-}" ] || fail "no built accord binary for systemd-analyze verify (cargo build first)"
  log "no built binary: verify runs with /bin/true as ExecStart"
  BIN=/bin/true
fi
BIN=$(readlink -f "$BIN")
# The copy keeps the unit's name (verify derives it from the file name).
sed "s|^ExecStart=/usr/bin/accord |ExecStart=$BIN |" "$UNIT" > "$WORK/accord.service"
grep -q "^ExecStart=$BIN service$" "$WORK/accord.service" || fail "could not point ExecStart at $BIN"
rc=0
systemd-analyze verify --man=no "$WORK/accord.service" > "$WORK/verify.txt" 2>&1 || rc=$?
if [ "$rc" != 0 ] || [ -s "$WORK/verify.txt" ]; then
  cat "$WORK/verify.txt" >&2
  fail "systemd-analyze verify accord.service: exit $rc"
fi
log "systemd-analyze verify: clean (ExecStart=$BIN service)"
log "PASS"
