#!/usr/bin/env bash
# The soak of issue 20 (not part of the test suite; results in docs/hardening.md, "Soak"):
# 300 trowel builds in a row through a proxy injecting a fault into 5% of registry requests.
#
#   scripts/soak.sh [OUT_DIR] [-- soak.py options]   e.g. scripts/soak.sh /tmp/soak -- --builds 50
#
# Starts the test registries (scripts/testenv.sh, stopped when this script ends), builds trowel
# (the dev profile, in $CARGO_TARGET_DIR or target/, unless TROWEL_BIN names a binary), then runs
# bench/soak/soak.py. OUT_DIR gets builds.jsonl (one line per build: class, time, peak RSS, peak
# open fds), summary.json, and the log of every build that did not succeed. Exits non-zero when
# any build is neither a success with a complete image nor a clean failure.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/target/soak}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${TROWEL_BIN:-}" ]; then
  (cd "$here" && cargo build --bin trowel)
  TROWEL_BIN=${CARGO_TARGET_DIR:-$here/target}/debug/trowel
fi

env_dir=$(mktemp -d /tmp/trowel-soak-env.XXXXXX)
sleep infinity & watch=$!
cleanup() { kill "$watch" 2>/dev/null || true; "$here/scripts/testenv.sh" down "$env_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$here/scripts/testenv.sh" up "$env_dir" "$watch" >/dev/null
set -a; . "$env_dir/env"; set +a

echo "soak: trowel $TROWEL_BIN, registry $TROWEL_TEST_REGISTRY, load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
python3 "$here/bench/soak/soak.py" --trowel "$TROWEL_BIN" --registry "$TROWEL_TEST_REGISTRY" --out "$out" "$@"
