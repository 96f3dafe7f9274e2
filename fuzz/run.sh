#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after the other, starting from the
# committed seeds (fuzz/seeds/<target>) plus what earlier runs found (fuzz/corpus/<target>, not
# committed). Crashes land in fuzz/artifacts/<target>/ (cargo-fuzz's choice); a summary line per target (executions,
# coverage, crashes) goes to stdout and fuzz/logs/summary.txt.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); toolchain and limits: lib.sh. For a run to a
# number of executions, on several cores: long.sh.
# The unpack target creates device nodes and chowns files in /tmp/trowel-fuzz: run it as root.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(dockerfile dockerignore unpack manifest config run_mount platform)
fi
. ./lib.sh
mkdir -p logs
for t in "${targets[@]}"; do
  "${fuzz[@]}" build -O --sanitizer "$sanitizer" "$t"
done
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="logs/$t.log"
  set +e
  "${fuzz[@]}" run -O --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" "${limits[@]}" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(executions "$log")
  cov=$(last_coverage "$log")
  crashes=$(find "artifacts/$t" -type f | wc -l)
  line="$(date -u +%FT%TZ) $t: ${seconds}s, $runs executions, coverage $cov, exit $rc, artifacts $crashes"
  echo "$line" | tee -a logs/summary.txt
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -m1 -A20 -E '^(==[0-9]+==ERROR|thread .* panicked)' "$log" || tail -20 "$log"
  fi
done
exit $status
