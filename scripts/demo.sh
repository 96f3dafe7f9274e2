#!/usr/bin/env bash
# The README quick start: build trowel, start a local registry with the busybox base image,
# build testdata/demo/ with trowel and push it, then run the pushed image with crun.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "==> building trowel (release)"
cargo build --release --quiet
envdir=$(mktemp -d /tmp/trowel-demo.XXXXXX)
cleanup() { scripts/testenv.sh down "$envdir" >/dev/null 2>&1 || true; rm -rf "$envdir"; }
trap cleanup EXIT
echo "==> starting a local registry and pushing the busybox base image (umoci + skopeo)"
scripts/testenv.sh up "$envdir" > /dev/null
# shellcheck disable=SC1091
. "$envdir/env"
reg=$TROWEL_TEST_REGISTRY
echo "==> trowel build → $reg/demo:latest"
target/release/trowel build \
  --context testdata/demo --dockerfile testdata/demo/Dockerfile \
  --build-arg REGISTRY="$reg" \
  --destination "$reg/demo:latest"
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
