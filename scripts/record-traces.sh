#!/usr/bin/env bash
# Records the sample traces under testdata/traces/ that the TUI's snapshot tests replay
# (tests/tui_panes.rs, tests/tui_screens.rs) and that scripts/screenshots.sh renders.
#
#   scripts/record-traces.sh
#
# Every trace comes from a real `trowel build --trace` against a local registry started by
# scripts/testenv.sh:
#   multistage.jsonl      testdata/corpus/multistage, pushed (a passing multi-stage build)
#   demo.jsonl            testdata/demo, pushed (heredoc RUN, COPY --from, USER, WORKDIR)
#   tour.jsonl            testdata/traces/tour, pushed (what the screenshots show: every pane has
#                         something, incl. a package cache deleted too late)
#   whiteouts.jsonl       testdata/corpus/whiteouts (files added, then deleted: layer waste)
#   overwrites.jsonl      testdata/traces/overwrites (a file rewritten three times, then chmod'ed;
#                         a directory filled over two steps, then removed: waste counted once)
#   files.jsonl           the same with --trace-base-listings (the Files pane's whole file
#                         system, base image included, and the image's efficiency)
#   cache-cold.jsonl      testdata/demo with --cache, first build (every cacheable step misses)
#   cache-rebuild.jsonl   the same build again after message.txt changed (hits, then misses)
#   fail-run-exit.jsonl   testdata/corpus/fail-run-exit (a RUN exits 3)
#   killed.jsonl          testdata/traces/killed, killed with SIGKILL during its sleep
#   checks.jsonl          testdata/traces/checks (build checks find something on four lines)
#   mounts.jsonl          testdata/traces/mounts with --cache and a --secret (RUN --mount of
#                         every kind but ssh: the Steps, Cache and Changes panes show them)
#   shell.jsonl           not recorded here: a debugger session whose shell's changes are kept
#                         needs a terminal; tests/tui_debug_e2e.rs records it in tmux
#                         (TROWEL_RECORD_SHELL_TRACE=$PWD/testdata/traces/shell.jsonl cargo test
#                         --test tui_debug_e2e break_step)
#
# Registry ports differ on every run, so after re-recording, review the snapshot changes with
# `cargo insta review` (or `INSTA_UPDATE=always cargo test --test tui_panes --test tui_screens`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/testdata/traces
scripts/install-deps.sh
cargo build --quiet --bin trowel
target=${CARGO_TARGET_DIR:-$root/target}
trowel=$target/debug/trowel

work=$(mktemp -d /tmp/trowel-traces.XXXXXX)
cleanup() { scripts/testenv.sh down "$work/env" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
scripts/testenv.sh up "$work/env" $$ >/dev/null
# shellcheck disable=SC1091
. "$work/env/env"
reg=$TROWEL_TEST_REGISTRY

build() { # trace-name context dockerfile [extra args...]
  local name=$1 ctx=$2 df=$3
  shift 3
  echo "==> $name" >&2
  "$trowel" build --context "$ctx" --dockerfile "$df" --build-arg "REGISTRY=$reg" \
    --trace "$out/$name.jsonl" --work-dir "$work" "$@" >"$work/$name.log" 2>&1
}

build multistage testdata/corpus/multistage testdata/corpus/multistage/Dockerfile \
  --destination "$reg/traces/multistage:1"
build demo testdata/demo testdata/demo/Dockerfile --destination "$reg/traces/demo:1"
build tour testdata/traces/tour testdata/traces/tour/Dockerfile --destination "$reg/traces/tour:1"
build whiteouts testdata/corpus/whiteouts testdata/corpus/whiteouts/Dockerfile --no-push
build overwrites testdata/traces/overwrites testdata/traces/overwrites/Dockerfile --no-push
build files testdata/traces/overwrites testdata/traces/overwrites/Dockerfile --no-push --trace-base-listings
build checks testdata/traces/checks testdata/traces/checks/Dockerfile --no-push

# The cached pair builds from a copy of the demo context so that one file can change; it is
# built from inside the work directory so the trace names it demo/Dockerfile.
mkdir -p "$work/demo"
cp -a testdata/demo/. "$work/demo/"
cached() { # trace-name
  echo "==> $1" >&2
  (cd "$work" && "$trowel" build --context demo --dockerfile demo/Dockerfile --build-arg "REGISTRY=$reg" \
    --cache --cache-copy-layers --destination "$reg/traces/cached:1" \
    --trace "$out/$1.jsonl" --work-dir "$work" >"$work/$1.log" 2>&1)
}
cached cache-cold
echo "This message changed, so its COPY and every step after it miss the cache." >"$work/demo/message.txt"
cached cache-rebuild

if build fail-run-exit testdata/corpus/fail-run-exit testdata/corpus/fail-run-exit/Dockerfile --no-push; then
  echo "fail-run-exit was expected to fail" >&2
  exit 1
fi

TRACE_TOKEN=trace-secret-value-1234 build mounts testdata/traces/mounts testdata/traces/mounts/Dockerfile \
  --destination "$reg/traces/mounts:1" --cache --secret id=token,env=TRACE_TOKEN \
  --mount-cache-dir "$work/mount-cache"

echo "==> killed" >&2
"$trowel" build --context testdata/traces/killed --dockerfile testdata/traces/killed/Dockerfile \
  --build-arg "REGISTRY=$reg" --no-push --trace "$out/killed.jsonl" --work-dir "$work" \
  >"$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q '"data":"long step started' "$out/killed.jsonl" 2>/dev/null && break
  sleep 0.1
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
grep -q '"data":"long step started' "$out/killed.jsonl" || { echo "killed: the build never reached its sleep" >&2; exit 1; }
wc -l "$out"/*.jsonl >&2
