#!/usr/bin/env bash
# Installs what tests/context_gcs.rs runs: a virtualenv with the GCS emulator (PyPI
# gcp-storage-emulator) and Google's own Python storage client (google-cloud-storage, which
# brings cryptography, used to verify a service account's JWT) at VENV (default:
# target/gcs-test-tools). Idempotent; concurrent callers wait for one install.
#
#   scripts/gcs-test-tools.sh [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-target/gcs-test-tools}
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ ! -e "$venv/.installed" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check gcp-storage-emulator==2026.7.19 google-cloud-storage==3.17.1 cryptography
  touch "$venv/.installed"
fi
