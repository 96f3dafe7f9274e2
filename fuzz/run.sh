#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after the other, starting from the
# committed seeds (fuzz/seeds/<target>) plus what earlier runs found (fuzz/corpus/<target>, not
# committed). Crashes land in fuzz/artifacts/<target>/ (cargo-fuzz's choice); a summary line per target (executions,
# coverage, crashes) goes to stdout and fuzz/logs/summary.txt.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain for the sanitizer flags;
# without nightly the stable toolchain is used with RUSTC_BOOTSTRAP=1 and no sanitizer.
# The unpack target creates device nodes and chowns files in /tmp/trowel-fuzz: run it as root.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(dockerfile dockerignore unpack manifest config run_mount platform)
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=address
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
  sanitizer=none
fi
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
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  crashes=$(find "artifacts/$t" -type f | wc -l)
  line="$(date -u +%FT%TZ) $t: ${seconds}s, $runs executions, coverage $cov, exit $rc, artifacts $crashes"
  echo "$line" | tee -a logs/summary.txt
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -m1 -A20 -E '^(==[0-9]+==ERROR|thread .* panicked)' "$log" || tail -20 "$log"
  fi
done
exit $status
