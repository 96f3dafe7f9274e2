#!/usr/bin/env bash
# Builds the test base image "busybox" from Debian's busybox-static with independent tools
# (umoci for the OCI layout, skopeo for the push) — never with trowel itself — and pushes it.
#
#   scripts/make-base-image.sh REGISTRY [REPO]       e.g. 127.0.0.1:5000  (REPO defaults to busybox)
#
# Pushes REPO:1.35 and REPO:latest as OCI manifests, REPO:docker as a Docker schema2 manifest,
# REPO:arm64 as a real linux/arm64 image (Debian's busybox-static:arm64, the same package version
# as the host's amd64 one) and REPO:multi as an index over linux/amd64 and linux/arm64/v8.
# Each rootfs has the applet symlinks, /etc/passwd and /etc/group (with a non-root user "app" in
# a supplementary group), /root, /home/app and a sticky /tmp.
#
# The arm64 .deb is downloaded once per machine into /var/cache/trowel-tests/debs (as the Debian
# bases' packages are); that needs the arm64 architecture (scripts/install-deps.sh adds it).
set -euo pipefail
registry=${1:?usage: make-base-image.sh REGISTRY [REPO]}
repo=${2:-busybox}
bb=$(command -v busybox)
case "$(file -b "$bb" 2>/dev/null || true)" in *dynamic*) echo "busybox is not static: install busybox-static" >&2; exit 1;; esac
debs=${TROWEL_TEST_CACHE:-/var/cache/trowel-tests}/debs

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The arm64 busybox: the same Debian version as the host's, so the applet list (read from the
# host's busybox, which can run here) is the same. Downloaded once, under a lock so concurrent
# test environments do not race on the cache.
version=$(dpkg-query -W -f='${Version}' busybox-static)
deb=$debs/busybox-static_${version//:/%3a}_arm64.deb
mkdir -p "$debs"
(
  flock 9
  if [ ! -s "$deb" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
      echo "the arm64 architecture is not enabled: run scripts/install-deps.sh (dpkg --add-architecture arm64)" >&2
      exit 1
    fi
    # apt's download sandbox user cannot write to root's cache: fetch in a scratch dir, then move.
    tmp=$(mktemp -d)
    chmod 0777 "$tmp"
    (cd "$tmp" && apt-get download -q "busybox-static:arm64=$version" >/dev/null) || {
      rm -rf "$tmp"
      echo "cannot download busybox-static:arm64=$version (apt-get update? the host's busybox-static upgraded?)" >&2
      exit 1
    }
    mv "$tmp"/*.deb "$deb.tmp" && mv "$deb.tmp" "$deb"
    rm -rf "$tmp"
  fi
) 9>"$debs/.busybox-arm64.lock"
got=$(dpkg-deb -f "$deb" Version)
[ "$got" = "$version" ] || { echo "$deb is version $got, the host's busybox-static is $version" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/arm64-deb"
bb_arm64=$work/arm64-deb/bin/busybox
case "$(file -b "$bb_arm64")" in *aarch64*static*) ;; *) echo "$bb_arm64 is not a static aarch64 binary" >&2; exit 1;; esac

# make_rootfs DIR BUSYBOX: the base's root filesystem around that busybox binary.
make_rootfs() {
  local rootfs=$1
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/app,tmp,var/tmp,proc,sys,dev}
  cp "$2" "$rootfs/bin/busybox"
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
}

layout=$work/layout
umoci init --layout "$layout"
# make_image TAG BUSYBOX ARCH WHAT: one image in the layout, WHAT naming its layer in the history.
make_image() {
  local tag=$1 bin=$2 arch=$3 what=$4
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$work/bundle-$tag" >/dev/null
  rm -rf "$work/bundle-$tag/rootfs"
  make_rootfs "$work/bundle-$tag/rootfs" "$bin"
  umoci repack --image "$layout:$tag" --history.created_by "$what rootfs (scripts/make-base-image.sh)" --history.created 2024-01-01T00:00:00Z "$work/bundle-$tag"
  umoci config --image "$layout:$tag" --no-history \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.cmd sh \
    --os linux --architecture "$arch" \
    --created 2024-01-01T00:00:00Z \
    --author trowel-tests
}
make_image base "$bb" amd64 busybox-static
make_image arm64 "$bb_arm64" arm64 busybox-static:arm64

# A two-platform index (busybox:multi) over the amd64 and the arm64 image, for FROM --platform,
# --custom-platform, --platform and emulation tests. An OCI index (not a Docker manifest list):
# the images are OCI manifests, and the registry and every client here read both. It is
# written by hand into the layout and pushed with skopeo --all.
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
skopeo copy -q "${dest[@]}" "oci:$layout:arm64" "docker://$registry/$repo:arm64"
skopeo copy -q --all "${dest[@]}" "oci:$layout:multi" "docker://$registry/$repo:multi"
echo "pushed $registry/$repo:{1.35,latest,docker,arm64,multi}"
