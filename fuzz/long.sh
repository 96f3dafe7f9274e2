#!/usr/bin/env bash
# Fuzzes one target until it has run EXECUTIONS inputs in all (default 10 million, the figure
# docs/hardening.md holds every target to), split over JOBS processes (default 1), one per core.
# The jobs share one working corpus (fuzz/corpus/<target>; libFuzzer reloads it every second, so
# what one job finds the others build on), start from it plus the committed seeds, and each stops
# at its share of the executions, so the total is exact and a crash in one job does not hide the
# others' results. Logs: fuzz/logs/<target>-long-<job>.log; a summary line (executions, wall time,
# rate, coverage, artifacts) goes to stdout and fuzz/logs/summary.txt; exit status 1 on any finding.
#
#   fuzz/long.sh TARGET [EXECUTIONS] [JOBS]
#
# Give the jobs otherwise idle cores: libFuzzer's timeout counts wall time, so a job starved or
# paused (never SIGSTOP one) for longer than `-timeout` reports a hang that is not there.
# The unpack target creates device nodes and chowns files in /tmp/trowel-fuzz: run it as root.
# It makes and removes a root per input, which on this project's virtual disk is most of its time
# (3 times slower than on a tmpfs), so for the run's length /tmp/trowel-fuzz is a tmpfs of 1 GiB
# unless something is mounted there already. tmpfs keeps everything the checks look at: device
# nodes, owners, modes, hard links, trusted.* xattrs.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/long.sh TARGET [EXECUTIONS] [JOBS]}
total=${2:-10000000}
jobs=${3:-1}
. ./lib.sh
"${fuzz[@]}" build -O --sanitizer "$sanitizer" "$target"
bin=$(fuzzer_binary "$target")
mkdir -p logs "corpus/$target" "artifacts/$target"
scratch=/tmp/trowel-fuzz
if [ "$target" = unpack ] && [ "$(id -u)" = 0 ] && ! mountpoint -q "$scratch"; then
  mkdir -p "$scratch"
  rm -rf "${scratch:?}"/*
  mount -t tmpfs -o size=1g,mode=0755 trowel-fuzz "$scratch"
  trap 'umount "$scratch"' EXIT
fi
share=$(((total + jobs - 1) / jobs))
start=$(date +%s)
pids=()
for j in $(seq 1 "$jobs"); do
  "$bin" "corpus/$target" "seeds/$target" -runs="$share" "${limits[@]}" \
    -artifact_prefix="artifacts/$target/" >"logs/$target-long-$j.log" 2>&1 &
  pids+=($!)
done
# Stop the jobs if this script is stopped (SIGTERM, or ^C in a terminal); SIGINT makes libFuzzer
# print its final stats, so an interrupted run still reports what it did.
interrupted=""
trap 'interrupted=", interrupted"; kill -INT "${pids[@]}" 2>/dev/null || true' INT TERM
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
seconds=$(($(date +%s) - start))
runs=0
cov=0
for j in $(seq 1 "$jobs"); do
  log="logs/$target-long-$j.log"
  runs=$((runs + $(executions "$log")))
  c=$(last_coverage "$log")
  [ "$c" -gt "$cov" ] && cov=$c
  grep -m1 -A20 -E '^(==[0-9]+==ERROR|thread .* panicked|==[0-9]+== ERROR: libFuzzer)' "$log" || true
done
crashes=$(find "artifacts/$target" -type f | wc -l)
line="$(date -u +%FT%TZ) $target ($sanitizer sanitizer): $runs executions in $jobs job(s), ${seconds}s, $((runs / (seconds > 0 ? seconds : 1)))/s, coverage $cov, exit $status$interrupted, artifacts $crashes"
echo "$line" | tee -a logs/summary.txt
exit $status
