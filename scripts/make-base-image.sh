#!/usr/bin/env bash
# Builds the test base image "busybox" from Debian's busybox-static with independent tools
# (umoci for the OCI layout, skopeo for the push) — never with trowel itself — and pushes it.
#
#   scripts/make-base-image.sh REGISTRY [REPO]       e.g. 127.0.0.1:5000  (REPO defaults to busybox)
#
# Pushes REPO:1.35 and REPO:latest as OCI manifests, REPO:docker as a Docker schema2 manifest and
# REPO:multi as an index over linux/amd64 and linux/arm64/v8.
# The rootfs has the applet symlinks, /etc/passwd and /etc/group (with a non-root user "app" in a
# supplementary group), /root, /home/app and a sticky /tmp.
set -euo pipefail
registry=${1:?usage: make-base-image.sh REGISTRY [REPO]}
repo=${2:-busybox}
bb=$(command -v busybox)
case "$(file -b "$bb" 2>/dev/null || true)" in *dynamic*) echo "busybox is not static: install busybox-static" >&2; exit 1;; esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/app,tmp,var/tmp,proc,sys,dev}
cp "$bb" "$rootfs/bin/busybox"
chmod 0755 "$rootfs/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$rootfs/$(dirname "$applet")"
  ln -sf /bin/busybox "$rootfs/$applet"
done
cat > "$rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app user:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$rootfs/etc/group" <<'G'
root:x:0:
daemon:x:1:
staff:x:50:app
app:x:1000:
audio:x:29:app,root
nogroup:x:65534:
G
echo "busybox-test" > "$rootfs/etc/hostname"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
chown 1000:1000 "$rootfs/home/app"
# Fixed times so the base image digest is stable across machines and runs.
find "$rootfs" -exec touch -h -d '2024-01-01T00:00:00Z' {} +

layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:base"
umoci unpack --image "$layout:base" "$work/bundle" >/dev/null
rm -rf "$work/bundle/rootfs"
mv "$rootfs" "$work/bundle/rootfs"
umoci repack --image "$layout:base" --history.created_by "busybox-static rootfs (scripts/make-base-image.sh)" --history.created 2024-01-01T00:00:00Z "$work/bundle"
umoci config --image "$layout:base" --no-history \
  --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --config.cmd sh \
  --created 2024-01-01T00:00:00Z \
  --author trowel-tests

# A two-platform index (busybox:multi): the real linux/amd64 image and a linux/arm64/v8 twin
# (same rootfs, arm64 config) for FROM --platform and --custom-platform tests. The index is
# written by hand into the layout and pushed with skopeo --all.
umoci config --image "$layout:base" --tag arm64 --no-history --architecture arm64 --created 2024-01-01T00:00:00Z
python3 - "$layout" <<'PY'
import hashlib, json, os, sys
layout = sys.argv[1]
top = json.load(open(os.path.join(layout, "index.json")))
refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}
entries = []
for tag, arch, variant in (("base", "amd64", None), ("arm64", "arm64", "v8")):
    m = dict(refs[tag])
    m.pop("annotations", None)
    m["platform"] = {"architecture": arch, "os": "linux"}
    if variant:
        m["platform"]["variant"] = variant
    entries.append(m)
index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": entries}, separators=(",", ":")).encode()
digest = hashlib.sha256(index).hexdigest()
open(os.path.join(layout, "blobs", "sha256", digest), "wb").write(index)
top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest,
                         "size": len(index), "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(top, open(os.path.join(layout, "index.json"), "w"))
PY

dest=(--dest-tls-verify=false)
skopeo copy -q "${dest[@]}" "oci:$layout:base" "docker://$registry/$repo:1.35"
skopeo copy -q "${dest[@]}" "oci:$layout:base" "docker://$registry/$repo:latest"
skopeo copy -q "${dest[@]}" --format v2s2 "oci:$layout:base" "docker://$registry/$repo:docker"
skopeo copy -q --all "${dest[@]}" "oci:$layout:multi" "docker://$registry/$repo:multi"
echo "pushed $registry/$repo:{1.35,latest,docker,multi}"
