#!/usr/bin/env bash
# The README quick start: build trowel, start a local registry with the busybox base image,
# build testdata/demo/ and push it, then run the pushed image with crun.
#
# With a terminal, the build runs in the debugger (`trowel debug`): it pauses at a breakpoint,
# shows what each step changed, and shows the image before anything is pushed (y pushes).
# Without one (CI), it builds with `trowel build --trace` and prints the `trowel replay`
# command that opens the recorded build in the same panes.
#
#   scripts/demo.sh                 # TROWEL_DEMO_TRACE=FILE: where the trace goes
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> building trowel (release)"
cargo build --release --quiet
trowel=${CARGO_TARGET_DIR:-target}/release/trowel
trace=${TROWEL_DEMO_TRACE:-/tmp/trowel-demo.jsonl}
envdir=$(mktemp -d /tmp/trowel-demo.XXXXXX)
cleanup() { scripts/testenv.sh down "$envdir" >/dev/null 2>&1 || true; rm -rf "$envdir"; }
trap cleanup EXIT
echo "==> starting a local registry and pushing the busybox base image (umoci + skopeo)"
scripts/testenv.sh up "$envdir" > /dev/null
# shellcheck disable=SC1091
. "$envdir/env"
reg=$TROWEL_TEST_REGISTRY
build_args=(--context testdata/demo --dockerfile testdata/demo/Dockerfile
  --build-arg REGISTRY="$reg" --destination "$reg/demo:latest" --trace "$trace")
if [ -t 0 ] && [ -t 1 ]; then
  cat <<EOF
==> trowel debug → $reg/demo:latest
    The build pauses before line 16 (COPY message.txt /etc/motd), a breakpoint:
      n   run that step, pausing before the next; k selects it again, 2 shows what it
          changed (enter: a file's diff), 1 back to the steps
      c   continue; before anything is pushed you see the image: y pushes it, n aborts
      esc then q   leave once it is pushed (q earlier aborts the build); ? every key
EOF
  printf '    press enter to start '
  read -r _
  status=0
  "$trowel" debug "${build_args[@]}" --break 16 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "==> the build did not push (exit $status); its trace: $trowel replay $trace"
    exit "$status"
  fi
else
  echo "==> trowel build → $reg/demo:latest (no terminal: recording a trace for the debugger)"
  "$trowel" build "${build_args[@]}"
fi
echo "==> pulling it back with skopeo and unpacking it with umoci"
skopeo copy -q --src-tls-verify=false "docker://$reg/demo:latest" "oci:$envdir/layout:demo"
umoci unpack --image "$envdir/layout:demo" "$envdir/bundle" > /dev/null
python3 - "$envdir/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(p, "w"))
PY
echo "==> running it with crun"
scripts/crun-run.sh "$envdir/bundle" "trowel-demo-$$"
echo "==> the build, step by step, in the debugger's panes (offline, read-only):"
echo "    $trowel replay $trace"
echo "    $trowel replay $trace --summary     # the same as plain text"
