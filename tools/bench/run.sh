#!/usr/bin/env bash
# The full benchmark: Granary against Garage on this machine, in the same run.
#
#   tools/bench/run.sh [OUT_DIR]          (default: bench-results/<UTC date-time>)
#
# Starts a release Granary and a Garage on loopback with equivalent settings (one node,
# replication 1, LMDB, fsync of data and metadata, 1 MiB blocks, no compression), then runs
# granary-bench against each, interleaved: RUNS times `all` (lat, ttfb, mixed, large, and
# raw against the machine), then million once per store (and on Granary alone the full
# million with sequential keys, with random keys, and a control), then ttfb on a
# simulated 5 Mbit/s link and lat with a 50 ms round trip (tools/netsim: server in one
# network namespace, client in another). Finally
# `granary-bench compare` writes the ratios (medians over the runs) and plot.py the charts.
#
# Environment:
#   GARAGE_BIN       Garage binary (default: `garage` on PATH, else
#                    /work/peer/garage/bin/garage). Without one the script stops and says
#                    how to build it: cargo install garage --version 2.5.0 --locked --root DIR
#   GRANARY_BIN      default target/release/granary (built with cargo build --release if missing)
#   BENCH_BIN        default tools/bench/target/release/granary-bench (built if missing)
#   RUNS             runs of `all` per store (default 3)
#   ALL_FLAGS        extra flags for `all` on both stores, e.g. --signed-payload or
#                    "--checksum crc32" (default none)
#   MILLION_BATCHES  batches of 8192 objects in million, same for both stores (default 128,
#                    0 skips it; Garage with fsync on takes 4-5 s per batch here, so the
#                    full runs in docs/benchmarks.md use 16)
#   MILLION_FLAGS    extra flags for that million on both stores, e.g. --random-keys
#                    (default none)
#   MILLION_FULL_BATCHES  million again on Granary alone, on a fresh data dir, recorded as
#                    million_full (default 128; 0 skips it)
#   MILLION_RANDOM_BATCHES  million on Granary alone, on a fresh data dir, with keys in
#                    random order (--random-keys: each batch's inserts land all over the
#                    keys already stored, as from many independent clients); recorded as
#                    million_random (default: MILLION_FULL_BATCHES; 0 skips it)
#   MILLION_CONTROL_BATCHES  million's control on Granary alone, on a fresh data dir: every
#                    batch rewrites the same 8192 keys (--same-keys), so the spread of its
#                    batches is the spread the object count does not explain; recorded as
#                    million_control (default: MILLION_FULL_BATCHES; 0 skips it)
#   NOISE_BATCHES    the machine's own spread (granary-bench noise: fixed memory-bound work,
#                    no store) run after million's control, with nothing else running
#                    (default 128; 0 skips it)
#   MIXED_SECONDS    duration of mixed (default 30)
#   NETSIM=0         skip the simulated-link ttfb (needs root and network namespaces)
#   PLOT=0           skip the charts
#   CHARTS           where plot.py writes them (default OUT_DIR; docs/bench for the docs')
#   WORK             scratch directory for data dirs and fio's file (default /var/tmp/...)
#   IDLE_TIMEOUT     before each experiment, wait at most this many seconds for both servers
#                    to go idle (default 120)
#
# Needs root for dropping the page cache between PUT and GET of large objects (so both
# stores' GETs come from the disk) and for netsim. Never part of tools/test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${1:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUNS="${RUNS:-3}"
MILLION_BATCHES="${MILLION_BATCHES:-128}"
MIXED_SECONDS="${MIXED_SECONDS:-30}"
WORK="${WORK:-$(mktemp -d /var/tmp/granary-bench.XXXXXX)}"
mkdir -p "$WORK"

log() { printf '\n[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/run.log" >&2; }
die() { log "$*"; exit 1; }

# --- binaries ------------------------------------------------------------------------
GARAGE_BIN="${GARAGE_BIN:-$(command -v garage || echo /work/peer/garage/bin/garage)}"
if [ ! -x "$GARAGE_BIN" ]; then
  die "Garage not found (GARAGE_BIN=$GARAGE_BIN). Build it once (tens of minutes on 2 cores):
    cargo install garage --version 2.5.0 --locked --root /opt/garage
  then: GARAGE_BIN=/opt/garage/bin/garage tools/bench/run.sh"
fi
GRANARY_BIN="${GRANARY_BIN:-$ROOT/target/release/granary}"
if [ ! -x "$GRANARY_BIN" ]; then
  log "building granary (release)"
  nice -n 10 cargo build --release
fi
BENCH_BIN="${BENCH_BIN:-$ROOT/tools/bench/target/release/granary-bench}"
if [ ! -x "$BENCH_BIN" ]; then
  log "building granary-bench (release)"
  nice -n 10 cargo build --release --manifest-path tools/bench/Cargo.toml
fi
command -v fio >/dev/null && command -v iperf3 >/dev/null || {
  log "installing fio and iperf3"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q fio iperf3
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hex() { python3 -c "import secrets; print(secrets.token_hex($1))"; }
wait_port() { # host port pid [netns]
  local prefix=()
  [ -n "${4:-}" ] && prefix=(ip netns exec "$4")
  for _ in $(seq 1 300); do
    kill -0 "$3" 2>/dev/null || return 1
    "${prefix[@]}" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Both stores use the same credentials (Garage's key format: GK + 24 hex, 64 hex secret).
ACCESS_KEY="GK$(hex 12)"
SECRET_KEY="$(hex 32)"
export AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${NETSIM_UP:-0}" = 1 ]; then "$ROOT/tools/netsim/netsim" down || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- servers -------------------------------------------------------------------------
# start_granary DIR ADDR [netns]  -> sets GRANARY_PID
start_granary() {
  local dir="$1" addr="$2" prefix=()
  [ -n "${3:-}" ] && prefix=(ip netns exec "$3")
  mkdir -p "$dir"
  GRANARY_ROOT_ACCESS_KEY_ID="$ACCESS_KEY" GRANARY_ROOT_SECRET_ACCESS_KEY="$SECRET_KEY" \
    "${prefix[@]}" "$GRANARY_BIN" server --data-dir "$dir/data" --s3-addr "$addr" \
    --admin-addr "127.0.0.1:$(free_port)" >"$dir/granary.log" 2>&1 &
  GRANARY_PID=$!
  PIDS+=("$GRANARY_PID")
  wait_port "${addr%:*}" "${addr##*:}" "$GRANARY_PID" "${3:-}" || die "granary did not start: $(tail -5 "$dir/granary.log")"
  echo "granary: $("$GRANARY_BIN" --version 2>/dev/null || echo '?'), $addr, pid $GRANARY_PID" >>"$OUT/run.log"
}

# start_garage DIR S3_ADDR [netns]  -> sets GARAGE_PID
start_garage() {
  local dir="$1" addr="$2" ns="${3:-}" prefix=()
  [ -n "$ns" ] && prefix=(ip netns exec "$ns")
  mkdir -p "$dir/meta" "$dir/data"
  local rpc="127.0.0.1:$(free_port)" admin="127.0.0.1:$(free_port)"
  cat >"$dir/garage.toml" <<EOF
# Equivalent to Granary's defaults: one node, one copy, LMDB, data and metadata synced
# before a write is acknowledged, 1 MiB blocks, no compression (Granary has none).
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
metadata_fsync = true
data_fsync = true
replication_factor = 1
consistency_mode = "consistent"
block_size = 1048576
compression_level = "none"
rpc_bind_addr = "$rpc"
rpc_public_addr = "$rpc"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "$addr"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "$admin"
EOF
  RUST_LOG=warn "${prefix[@]}" "$GARAGE_BIN" -c "$dir/garage.toml" server >"$dir/garage.log" 2>&1 &
  GARAGE_PID=$!
  PIDS+=("$GARAGE_PID")
  local g=("${prefix[@]}" "$GARAGE_BIN" -c "$dir/garage.toml")
  # `node id` reads the key on disk; `status` needs the node's RPC to answer.
  local up=0
  for _ in $(seq 1 150); do
    kill -0 "$GARAGE_PID" 2>/dev/null || die "garage exited: $(tail -5 "$dir/garage.log")"
    if "${g[@]}" status >/dev/null 2>&1; then up=1; break; fi
    sleep 0.2
  done
  [ "$up" = 1 ] || die "garage did not answer: $(tail -5 "$dir/garage.log")"
  local id
  id=$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1)
  "${g[@]}" layout assign -z dc1 -c 100G "$id" >/dev/null
  "${g[@]}" layout apply --version 1 >/dev/null
  "${g[@]}" key import --yes -n bench "$ACCESS_KEY" "$SECRET_KEY" >/dev/null
  "${g[@]}" key allow --create-bucket "$ACCESS_KEY" >/dev/null
  # The S3 API answers once the layout is in place.
  for _ in $(seq 1 100); do
    "${prefix[@]}" "$BENCH_BIN" lat --smoke --count 1 --endpoint "http://$addr" >/dev/null 2>&1 && break
    sleep 0.3
  done
  echo "garage: $("$GARAGE_BIN" --version 2>/dev/null | head -1), $addr, pid $GARAGE_PID" >>"$OUT/run.log"
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# cpu_ticks PID: the CPU time a process has used so far, in clock ticks (0 once it is gone).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# wait_idle: waits (at most IDLE_TIMEOUT s, default 120) until every server still running
# used at most 2 % of a core over the last second. A store keeps working after its
# requests are answered (Garage kept 1.4-1.7 cores busy for 2-4 s after the deletes that
# end its run; Granary scrubs, and frees deleted blocks), and that tail would
# land on the other store's first experiment: in runs f to k it fell on Granary's lat
# of runs 2 and 3 and slowed it up to 2x (2026-11-27, 12:36). Logs how long it waited
# and for which processes.
wait_idle() {
  local start=$SECONDS pid busy seen=""
  local -A before
  while :; do
    for pid in "${PIDS[@]}"; do before[$pid]=$(cpu_ticks "$pid"); done
    sleep 1
    busy=""
    for pid in "${PIDS[@]}"; do
      [ -d "/proc/$pid" ] || continue
      [ $(($(cpu_ticks "$pid") - ${before[$pid]})) -le 2 ] || busy+=" $pid"
    done
    for pid in $busy; do
      case " $seen " in *" $pid ("*) ;; *) seen+=" $pid ($(cat "/proc/$pid/comm" 2>/dev/null))" ;; esac
    done
    [ -z "$busy" ] && break
    if [ $((SECONDS - start)) -ge "${IDLE_TIMEOUT:-120}" ]; then
      log "still busy after ${IDLE_TIMEOUT:-120} s (pid$busy); going on"
      return 0
    fi
  done
  if [ -n "$seen" ]; then log "waited $((SECONDS - start - 1)) s for the servers to go idle (busy:$seen)"; fi
}

bench() { # label endpoint json args...
  local label="$1" ep="$2" json="$3"; shift 3
  wait_idle
  log "granary-bench $* --label $label ($ep)"
  "$BENCH_BIN" "$@" --endpoint "$ep" --label "$label" --json-out "$json" 2>&1 | tee -a "$OUT/$label.txt"
}

# --- loopback runs -------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
  echo "load before: $(cat /proc/loadavg)"
  echo "RUNS=$RUNS MILLION_BATCHES=$MILLION_BATCHES MILLION_FLAGS=${MILLION_FLAGS:-} MILLION_FULL_BATCHES=${MILLION_FULL_BATCHES:-128} MILLION_RANDOM_BATCHES=${MILLION_RANDOM_BATCHES:-${MILLION_FULL_BATCHES:-128}} MILLION_CONTROL_BATCHES=${MILLION_CONTROL_BATCHES:-${MILLION_FULL_BATCHES:-128}} NOISE_BATCHES=${NOISE_BATCHES:-128} MIXED_SECONDS=$MIXED_SECONDS ALL_FLAGS=${ALL_FLAGS:-}"
} >>"$OUT/run.log"

GP=$(free_port); start_granary "$WORK/granary" "127.0.0.1:$GP"
RP=$(free_port); start_garage "$WORK/garage" "127.0.0.1:$RP"
read -r -a ALL_EXTRA <<<"${ALL_FLAGS:-}"
COMMON=(--duration "$MIXED_SECONDS" --drop-caches --raw-dir "$WORK" "${ALL_EXTRA[@]}")
for r in $(seq 1 "$RUNS"); do
  bench granary "http://127.0.0.1:$GP" "$OUT/granary-$r.json" all --skip million "${COMMON[@]}" \
    --server-pid "$GRANARY_PID"
  bench garage "http://127.0.0.1:$RP" "$OUT/garage-$r.json" all --skip million,raw "${COMMON[@]}" \
    --server-pid "$GARAGE_PID"
done
read -r -a MILLION_EXTRA <<<"${MILLION_FLAGS:-}"
if [ "$MILLION_BATCHES" != 0 ]; then
  bench granary "http://127.0.0.1:$GP" "$OUT/granary-million.json" million --batches "$MILLION_BATCHES" \
    --no-cleanup "${MILLION_EXTRA[@]}" --server-pid "$GRANARY_PID"
fi
# million_alone NAME BATCHES [FLAGS...]: million on Granary alone, on a fresh data dir,
# recorded as million_NAME in granary-million-NAME.json (BATCHES 0 skips it).
million_alone() {
  local name="$1" batches="$2"; shift 2
  [ "$batches" != 0 ] || return 0
  stop_pid "$GRANARY_PID"
  GP=$(free_port); start_granary "$WORK/granary-$name" "127.0.0.1:$GP"
  bench granary "http://127.0.0.1:$GP" "$OUT/granary-million-$name.json" million \
    --batches "$batches" "$@" --no-cleanup --record-as "million_$name" \
    --server-pid "$GRANARY_PID"
}
# At the full count: does the cost grow with it?
million_alone full "${MILLION_FULL_BATCHES:-128}"
# The same count with keys in random order: the B-tree's worst case for writes.
million_alone random "${MILLION_RANDOM_BATCHES:-${MILLION_FULL_BATCHES:-128}}" --random-keys
# The control: as many batches, but the store never holds more than one batch of objects.
million_alone control "${MILLION_CONTROL_BATCHES:-${MILLION_FULL_BATCHES:-128}}" --same-keys
stop_pid "$GRANARY_PID"
if [ "${NOISE_BATCHES:-128}" != 0 ]; then
  # The floor under million's spread: the same work in every batch, no store involved
  # (Garage is up but idle), so no endpoint either.
  wait_idle
  log "granary-bench noise --batches ${NOISE_BATCHES:-128} --label granary (no store)"
  "$BENCH_BIN" noise --batches "${NOISE_BATCHES:-128}" --label granary \
    --json-out "$OUT/granary-noise.json" 2>&1 | tee -a "$OUT/granary.txt"
fi
if [ "$MILLION_BATCHES" != 0 ]; then
  bench garage "http://127.0.0.1:$RP" "$OUT/garage-million.json" million --batches "$MILLION_BATCHES" \
    --no-cleanup "${MILLION_EXTRA[@]}" --server-pid "$GARAGE_PID"
fi
stop_pid "$GARAGE_PID"

# --- ttfb on a simulated 5 Mbit/s link ---------------------------------------------------
shopt -s nullglob # RUNS=0 leaves no granary-N.json: the globs then add nothing
OURS=("$OUT"/granary-[0-9]*.json)
for f in million million-full million-random million-control noise; do
  if [ -f "$OUT/granary-$f.json" ]; then OURS+=("$OUT/granary-$f.json"); fi
done
PEER=("$OUT"/garage-[0-9]*.json)
if [ -f "$OUT/garage-million.json" ]; then PEER+=("$OUT/garage-million.json"); fi
if [ "${NETSIM:-1}" != 0 ]; then
  log "netsim: 2 hosts, 5 Mbit/s each way, no added delay (as in the seed's TTFB test)"
  "$ROOT/tools/netsim/netsim" down >/dev/null 2>&1 || true
  "$ROOT/tools/netsim/netsim" up 2 --rate 5mbit
  NETSIM_UP=1
  CHECK_SECONDS=3 "$ROOT/tools/netsim/netsim" check 2>&1 | tee -a "$OUT/run.log"
  NS_ARGS=(ttfb --sizes 1MiB,4.5MiB --repeat 3 --record-as ttfb_netsim)
  start_granary "$WORK/ns-granary" "10.77.0.1:3900" gns1
  log "granary-bench ${NS_ARGS[*]} (granary in gns1, client in gns2)"
  ip netns exec gns2 "$BENCH_BIN" "${NS_ARGS[@]}" --endpoint http://10.77.0.1:3900 --label granary \
    --json-out "$OUT/granary-netsim.json" 2>&1 | tee -a "$OUT/granary.txt"
  stop_pid "$GRANARY_PID"
  start_garage "$WORK/ns-garage" "10.77.0.1:3900" gns1
  log "granary-bench ${NS_ARGS[*]} (garage in gns1, client in gns2)"
  ip netns exec gns2 "$BENCH_BIN" "${NS_ARGS[@]}" --endpoint http://10.77.0.1:3900 --label garage \
    --json-out "$OUT/garage-netsim.json" 2>&1 | tee -a "$OUT/garage.txt"
  stop_pid "$GARAGE_PID"
  "$ROOT/tools/netsim/netsim" down
  NETSIM_UP=0

  # lat with 50 ms between client and server (25 ms added to what each host receives):
  # request time in round trips, the seed's "latency amplification".
  log "netsim: 2 hosts, 50 ms round trip, no rate limit"
  "$ROOT/tools/netsim/netsim" up 2 --delay-ms 25
  NETSIM_UP=1
  CHECK_SECONDS=3 "$ROOT/tools/netsim/netsim" check 2>&1 | tee -a "$OUT/run.log"
  NS_ARGS=(lat --count 20 --record-as lat_netsim)
  start_granary "$WORK/ns2-granary" "10.77.0.1:3900" gns1
  log "granary-bench ${NS_ARGS[*]} (granary in gns1, client in gns2)"
  ip netns exec gns2 "$BENCH_BIN" "${NS_ARGS[@]}" --endpoint http://10.77.0.1:3900 --label granary \
    --json-out "$OUT/granary-netsim-lat.json" 2>&1 | tee -a "$OUT/granary.txt"
  stop_pid "$GRANARY_PID"
  start_garage "$WORK/ns2-garage" "10.77.0.1:3900" gns1
  log "granary-bench ${NS_ARGS[*]} (garage in gns1, client in gns2)"
  ip netns exec gns2 "$BENCH_BIN" "${NS_ARGS[@]}" --endpoint http://10.77.0.1:3900 --label garage \
    --json-out "$OUT/garage-netsim-lat.json" 2>&1 | tee -a "$OUT/garage.txt"
  stop_pid "$GARAGE_PID"
  "$ROOT/tools/netsim/netsim" down
  NETSIM_UP=0
  OURS+=("$OUT/granary-netsim.json" "$OUT/granary-netsim-lat.json")
  PEER+=("$OUT/garage-netsim.json" "$OUT/garage-netsim-lat.json")
fi

# --- ratios and charts ---------------------------------------------------------------
join() { local IFS=,; echo "$*"; }
echo "load after: $(cat /proc/loadavg)" >>"$OUT/run.log"
"$BENCH_BIN" compare "$(join "${OURS[@]}")" "$(join "${PEER[@]}")" --json-out "$OUT/compare.json" | tee "$OUT/compare.txt"
if [ "${PLOT:-1}" != 0 ]; then
  "$ROOT/tools/bench/plot.py" "$OUT" "${CHARTS:-$OUT}"
fi
log "done: results in $OUT"
