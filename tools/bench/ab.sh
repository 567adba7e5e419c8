#!/usr/bin/env bash
# Before and after: two builds of Granary measured side by side in one run, with an A/A
# control (build A against itself) that shows what the machine's noise alone does.
#
#   tools/bench/ab.sh BIN_A BIN_B [OUT_DIR]      (default OUT_DIR: bench-results/ab-<UTC time>)
#
# Three single-node servers run at once on loopback, each on a data directory of its own:
# A, B, and A again (A2). Every round runs, against each server in turn (the order rotates
# from round to round), granary-bench's `large` (64 MiB objects, PUT then GET), `mixed`
# (MIXED_SECONDS) and `million` (MILLION_BATCHES batches of 8192 16-byte objects, each on
# its fresh bucket), keys batch by batch and again in random order (`--random-keys`, as
# many independent clients write). The figures of a round are paired: B/A and A2/A, per figure. The
# report (ab.py) gives each figure's pairwise ratios and their median: the change is no
# slower when B/A's median is at least 0.95, read beside A2/A's spread.
#
# Environment:
#   ROUNDS           interleaved rounds (default 7)
#   MIXED_SECONDS    duration of mixed (default 15)
#   MILLION_BATCHES  batches of million (default 16)
#   BENCH_BIN        default tools/bench/target/release/granary-bench (built if missing)
#   SHARDS           --shards of every server (default 2)
#   WORK             scratch directory (default a new one under /var/tmp)
# Needs root to drop the page cache between large's PUT and GET. Never part of tools/test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN_A="$(realpath "${1:?usage: ab.sh BIN_A BIN_B [OUT_DIR]}")"
BIN_B="$(realpath "${2:?usage: ab.sh BIN_A BIN_B [OUT_DIR]}")"
OUT="${3:-bench-results/ab-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROUNDS="${ROUNDS:-7}"
MIXED_SECONDS="${MIXED_SECONDS:-15}"
MILLION_BATCHES="${MILLION_BATCHES:-16}"
SHARDS="${SHARDS:-2}"
WORK="${WORK:-$(mktemp -d /var/tmp/granary-ab.XXXXXX)}"
BENCH_BIN="${BENCH_BIN:-$ROOT/tools/bench/target/release/granary-bench}"
if [ ! -x "$BENCH_BIN" ]; then
  nice -n 10 cargo build --release --manifest-path tools/bench/Cargo.toml
fi

log() { printf '[ab.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }

ACCESS=GKABBENCH0000000001
SECRET=ab-bench-secret-key-0123456789abcdefghijk
declare -A PID PORT BIN
BIN[a]="$BIN_A"; BIN[b]="$BIN_B"; BIN[a2]="$BIN_A"
# Below the ephemeral range (32768-60999), so that no client connection holds them.
PORT[a]=29500; PORT[b]=29510; PORT[a2]=29520

start() {
  local side=$1 port=${PORT[$1]}
  mkdir -p "$WORK/$side"
  GRANARY_ROOT_ACCESS_KEY_ID=$ACCESS GRANARY_ROOT_SECRET_ACCESS_KEY=$SECRET \
    "${BIN[$side]}" server --data-dir "$WORK/$side/data" --shards "$SHARDS" \
    --s3-addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$((port + 3))" \
    --web-addr "127.0.0.1:$((port + 2))" >"$WORK/$side/log" 2>&1 &
  PID[$side]=$!
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  log "server $side did not start"; exit 1
}

stop_all() {
  for side in a b a2; do
    [ -n "${PID[$side]:-}" ] && kill "${PID[$side]}" 2>/dev/null && wait "${PID[$side]}" 2>/dev/null
  done
  true
}
trap stop_all EXIT

bench() {
  local side=$1 round=$2 name=$3 exp=$4; shift 4
  "$BENCH_BIN" --endpoint "http://127.0.0.1:${PORT[$side]}" --access-key "$ACCESS" \
    --secret-key "$SECRET" --label "$side" --server-pid "${PID[$side]}" \
    --json-out "$OUT/$name-$side-$round.json" "$@" "$exp" >>"$OUT/$side.log" 2>&1
}

for side in a b a2; do start "$side"; done
log "A=$BIN_A B=$BIN_B rounds=$ROUNDS work=$WORK"
for round in $(seq "$ROUNDS"); do
  case $((round % 3)) in
    0) order="a b a2" ;;
    1) order="b a2 a" ;;
    *) order="a2 a b" ;;
  esac
  for side in $order; do
    log "round $round: $side"
    bench "$side" "$round" large large --drop-caches
    bench "$side" "$round" mixed mixed --duration "$MIXED_SECONDS"
    bench "$side" "$round" million million --batches "$MILLION_BATCHES"
    bench "$side" "$round" million-random million --batches "$MILLION_BATCHES" --random-keys
  done
done
stop_all
python3 "$ROOT/tools/bench/ab.py" "$OUT" | tee "$OUT/report.md"
