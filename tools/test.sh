#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds, runs the Rust tests, then the
# client integration tests (AWS CLI, boto3, s3cmd, rclone) against the binary just built.
# It builds once, in the dev profile (dependencies fully optimized, debug assertions on:
# stricter than release); PROFILE=release tests the release binary instead.
# The storage and layout benchmarks (benches/) run in a smoke size. The benchmark tool
# (tools/bench, a package of its own) is unit-tested and built here too;
# tests/clients/test_bench_smoke.py runs its smoke mode (seconds) against the test server.
# Extra arguments go to pytest, e.g.  tools/test.sh -k boto3 -x
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies (tools/install-test-deps.sh)"
tools/install-test-deps.sh

PROFILE="${PROFILE:-dev}"
TARGET_SUBDIR=debug
[ "$PROFILE" = release ] && TARGET_SUBDIR=release

step "cargo build --profile $PROFILE"
cargo build --profile "$PROFILE"

step "cargo test --profile $PROFILE"
cargo test --profile "$PROFILE"

# The storage benchmarks (benches/) in a smoke size: seconds, so that they never rot.
step "storage benchmarks, smoke size (benches/, profile $PROFILE)"
BENCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/granary-bench-smoke.XXXXXX")"
cargo bench --profile "$PROFILE" --bench lmdb_txn_bench -- --objects 4096 --txn 56,1024 \
  --dir "$BENCH_DIR/lmdb"
cargo bench --profile "$PROFILE" --bench storage_bench -- --quick --secs 0.2 --runs 1 \
  --dir "$BENCH_DIR/storage"
rm -rf "$BENCH_DIR"
cargo bench --profile "$PROFILE" --bench layout_bench -- --sizes 64:256,256:4096

step "benchmark tool: cargo test + build (tools/bench, dev profile)"
nice -n 10 cargo test --manifest-path tools/bench/Cargo.toml
nice -n 10 cargo build --manifest-path tools/bench/Cargo.toml
export GRANARY_BENCH_BIN="${GRANARY_BENCH_BIN:-$ROOT/tools/bench/target/debug/granary-bench}"

export GRANARY_BIN="${GRANARY_BIN:-$ROOT/target/$TARGET_SUBDIR/granary}"
step "client integration tests: pytest tests/clients (GRANARY_BIN=$GRANARY_BIN)"
.venv/bin/pytest tests/clients -q "$@"

step "all tests passed"
