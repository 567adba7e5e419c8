#!/usr/bin/env bash
# Installs what the client integration tests need; safe to run again and again.
#  - Debian packages: s3cmd, rclone, curl, prometheus (promtool), systemd (systemd-analyze),
#    openssl, chromium (the headless browser test of websites, CORS and POST uploads), fio
#    and iperf3 (the benchmark smoke test measures the raw limits too); only when missing
#  - .venv in the repo with the AWS CLI v1, boto3, pytest, requests, pytest-timeout
# Runs as root in CI without prompts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# awscli v1 pins one botocore; boto3 is resolved by pip to the matching release.
PY_REQS=(
  "awscli>=1.46,<1.47"
  "boto3>=1.44,<2"
  "matplotlib>=3.8,<4"
  "pytest>=8,<9"
  "pytest-timeout>=2.3,<3"
  "requests>=2.31,<3"
)

log() { echo "[install-test-deps] $*"; }

# --- Debian packages -------------------------------------------------------
missing=()
command -v s3cmd >/dev/null 2>&1 || missing+=(s3cmd)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "Debian packages already present"
fi

# --- Python virtual environment -------------------------------------------
PY="${PYTHON:-python3}"
venv_complete() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/aws" ] && [ -x "$VENV/bin/pytest" ] &&
    "$VENV/bin/python" - "${PY_REQS[@]}" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=True):
        sys.exit(1)
import boto3, botocore, matplotlib, requests, pytest, pytest_timeout  # noqa: F401
PYEOF
}

if venv_complete; then
  log ".venv is complete, reusing it"
else
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    log "removing broken $VENV (its interpreter does not run)"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    if ! "$PY" -m venv "$VENV"; then
      log "python venv module missing; installing python3-venv"
      rm -rf "$VENV"
      env DEBIAN_FRONTEND=noninteractive apt-get update -q
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  log "installing Python packages: ${PY_REQS[*]}"
  "$VENV/bin/python" -m pip install -q --upgrade pip packaging
  "$VENV/bin/python" -m pip install -q "${PY_REQS[@]}"
  venv_complete || { log "virtual environment still incomplete"; exit 1; }
fi

log "versions: $("$VENV/bin/aws" --version 2>&1) | boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)') | $(s3cmd --version 2>&1) | $(rclone version 2>/dev/null | head -1)"
