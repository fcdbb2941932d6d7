#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ briefly, for CI.
# Installs cargo-fuzz if missing. The machine has the stable toolchain only:
# RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz needs (see fuzz/README.md).
#
# Usage: scripts/fuzz-ci.sh [SECONDS_PER_TARGET]     (default 60, or $FUZZ_SECONDS)
# Exit status: non-zero if a target fails to build or finds a crash, leak,
# timeout or out-of-memory; the input is then in fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-${FUZZ_SECONDS:-60}}"
CARGO_FUZZ_VERSION=0.13.2
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

targets=$(cargo fuzz list)
if [ -z "$targets" ]; then
  echo "no fuzz target found in fuzz/" >&2
  exit 1
fi
# Every target CI must run, so a renamed or removed one fails loudly
# instead of silently not being fuzzed any more.
for required in framer handshake server_framer host; do
  if ! grep -qx "$required" <<<"$targets"; then
    echo "fuzz target $required missing from fuzz/Cargo.toml" >&2
    exit 1
  fi
done

echo "== building fuzz targets: $(echo $targets)"
cargo fuzz build -O

# Seed the server framer with the start of real recorded streams (first
# byte: the target's pixel-format choice, then the server's bytes), so it
# reaches Tight/ZRLE/Hextile paths at once instead of rediscovering RFB.
seed_dir=fuzz/corpus/server_framer
mkdir -p "$seed_dir"
for rec in x11vnc-tight:2 xvnc-tight:2 x11vnc-zrle:2 xvnc-zrle:2 x11vnc-hextile-16bpp:1 x11vnc-raw-8bpp:0; do
  name=${rec%%:*} choice=${rec##*:}
  src=tests/data/rfb/$name.bin
  [ -f "$src" ] || continue
  # 0x40 in the first byte: reads of 8*37+1 bytes; clipboard refused.
  # (head before tail: tail reads to the end, so no SIGPIPE under pipefail)
  { printf "\\x$(printf %02x $((choice | 0x40)))"; head -c $((16 + 16384)) "$src" | tail -c +17; } \
    >"$seed_dir/seed-$name"
done

failed=()
summary=()
for t in $targets; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  log="$(mktemp)"
  echo "== fuzzing $t for ${secs}s (corpus $corpus)"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds
  # memory (the rfb code must stay bounded whatever the peer sends).
  if cargo fuzz run -O "$t" "$corpus" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  cov=$(grep -Eo '#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  summary+=("$t: $status, ${execs:-?} executions in ${secs}s; ${cov:-no final stats}")
  if [ "$status" = FAILED ]; then
    tail -60 "$log"
    ls -1 "fuzz/artifacts/$t" 2>/dev/null | sed "s|^|  artifact: fuzz/artifacts/$t/|"
  else
    tail -3 "$log"
  fi
  rm -f "$log"
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a problem in: ${failed[*]}" >&2
  exit 1
fi
