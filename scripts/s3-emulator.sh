#!/usr/bin/env bash
# The S3-compatible server the s3:// context tests run against: moto in server mode, with boto3
# (AWS's own Python SDK) as the independent client that fills it. Installed from PyPI into a
# virtualenv under target/ the first time (pinned, so every machine tests against the same
# emulator); prints the virtualenv's python. tests/s3_support starts it. Concurrent callers
# (scripts/test.sh prepares it beside the compile while a test may ask for it) wait for one install.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/s3-emulator
want="moto[server]==5.2.5 boto3==1.44.8"
mkdir -p target
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv" >&2
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q $want >&2
  echo "$want" > "$venv/.installed"
fi
echo "$PWD/$venv/bin/python"
