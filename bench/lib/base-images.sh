#!/usr/bin/env bash
# Base images for the workloads, built with independent tools (umoci for the OCI layouts, skopeo
# for the pushes; never with trowel or buildah) and pushed to the bench registry:
#
#   REG/busybox:1.35              scripts/make-base-image.sh (the test suite's busybox-static image)
#   REG/debian:bookworm-minbase   W4/W5: debootstrap minbase rootfs, one layer
#   REG/many-files:100k           the snapshot-cost workload: busybox + /data with 100,000 files
#                                 in 1,000 directories (a second layer)
#
#   bench/lib/base-images.sh REGISTRY CACHE_DIR
#
# The OCI layouts are made once and kept in CACHE_DIR; only the pushes are repeated per registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reg=${1:?usage: base-images.sh REGISTRY CACHE_DIR}
cache=${2:?usage: base-images.sh REGISTRY CACHE_DIR}
mkdir -p "$cache"
dest=(--dest-tls-verify=false)

"$here/../../scripts/make-base-image.sh" "$reg" busybox >/dev/null

debian_layout=$cache/debian-layout
if [ ! -f "$debian_layout/.done" ]; then
  "$here/debian-rootfs.sh" "$cache/debian-bookworm-minbase.tar"
  rm -rf "$debian_layout" "$cache/debian-bundle"
  umoci init --layout "$debian_layout"
  umoci new --image "$debian_layout:base"
  umoci unpack --image "$debian_layout:base" "$cache/debian-bundle" >/dev/null
  tar --numeric-owner --xattrs -C "$cache/debian-bundle/rootfs" -xf "$cache/debian-bookworm-minbase.tar"
  umoci repack --image "$debian_layout:base" --history.created_by "debootstrap --variant=minbase bookworm" \
    --history.created 2024-01-01T00:00:00Z "$cache/debian-bundle"
  umoci config --image "$debian_layout:base" --no-history \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.cmd bash --created 2024-01-01T00:00:00Z --author trowel-bench
  rm -rf "$cache/debian-bundle"
  touch "$debian_layout/.done"
fi
skopeo copy -q "${dest[@]}" "oci:$debian_layout:base" "docker://$reg/debian:bookworm-minbase"

many_layout=$cache/many-files-layout
if [ ! -f "$many_layout/.done" ]; then
  rm -rf "$many_layout" "$cache/many-bundle"
  skopeo copy -q --src-tls-verify=false "docker://$reg/busybox:1.35" "oci:$many_layout:base"
  umoci unpack --image "$many_layout:base" "$cache/many-bundle" >/dev/null
  python3 - "$cache/many-bundle/rootfs/data" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    dd = os.path.join(root, "d%03d" % d)
    os.makedirs(dd)
    for f in range(100):
        with open(os.path.join(dd, "f%03d" % f), "w") as fh:
            fh.write("file %d/%d\n" % (d, f))
PY
  find "$cache/many-bundle/rootfs/data" -exec touch -h -d '2024-01-01T00:00:00Z' {} +
  umoci repack --image "$many_layout:base" --history.created_by "100,000 files under /data" \
    --history.created 2024-01-01T00:00:00Z "$cache/many-bundle"
  rm -rf "$cache/many-bundle"
  touch "$many_layout/.done"
fi
skopeo copy -q "${dest[@]}" "oci:$many_layout:base" "docker://$reg/many-files:100k"
echo "pushed $reg/{busybox:1.35,debian:bookworm-minbase,many-files:100k}"
