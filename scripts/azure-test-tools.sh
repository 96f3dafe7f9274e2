#!/usr/bin/env bash
# Installs the Azure Blob Storage tools tests/context_azure.rs uses, under target/ (idempotent):
# Azurite, Microsoft's storage emulator, from npm, and Microsoft's Python SDK
# (azure-storage-blob, from PyPI) as the independent client that uploads contexts and signs SAS
# tokens. Prints the directory they are in.
#
#   scripts/azure-test-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/azure-test-tools
mkdir -p "$dir"
# One installer at a time (test binaries may start together).
exec 9>"$dir/.lock"
flock 9
if [ ! -x "$dir/node/node_modules/.bin/azurite-blob" ]; then
  command -v npm >/dev/null || { echo "npm not found: run scripts/install-deps.sh" >&2; exit 1; }
  mkdir -p "$dir/node"
  npm install --prefix "$dir/node" --no-audit --no-fund --loglevel=error azurite@3.35.0 >&2
fi
if ! "$dir/venv/bin/python" -c 'import azure.storage.blob' 2>/dev/null; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q 'azure-storage-blob==12.31.1' >&2
fi
echo "$dir"
