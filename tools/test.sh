#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds, runs the Rust tests, then the
# client integration tests (AWS CLI, boto3, s3cmd, rclone) against the release binary.
# Extra arguments go to pytest, e.g.  tools/test.sh -k boto3 -x
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies (tools/install-test-deps.sh)"
tools/install-test-deps.sh

step "cargo build --release"
cargo build --release

step "cargo test --release"
cargo test --release

export GRANARY_BIN="${GRANARY_BIN:-$ROOT/target/release/granary}"
step "client integration tests: pytest tests/clients (GRANARY_BIN=$GRANARY_BIN)"
.venv/bin/pytest tests/clients -q "$@"

step "all tests passed"
