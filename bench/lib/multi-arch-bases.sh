#!/usr/bin/env bash
# Two-platform base images for the multi-platform workloads (W1x2, W4x2), made the way the amd64
# ones are (umoci for the OCI layouts, skopeo for the pushes; never trowel or buildah) and pushed
# as OCI image indexes over linux/amd64 and linux/arm64/v8:
#
#   REG/busybox-multi:1.35               amd64: REG/busybox:1.35 as it is (scripts/make-base-image.sh);
#                                        arm64: the same root with Debian's busybox-static:arm64
#                                        binary and its applet links
#   REG/debian-multi:bookworm-minbase    amd64: the W4 base (debian-rootfs.sh); arm64: debootstrap
#                                        --arch=arm64 --foreign + second stage under QEMU emulation
#
#   bench/lib/multi-arch-bases.sh REGISTRY CACHE_DIR
#
# Needs REG/busybox:1.35 already pushed and CACHE_DIR/debian-layout made (base-images.sh), and a
# binfmt_misc handler for aarch64 (Debian's qemu-user-static): the arm64 busybox lists its applets
# under emulation, and the arm64 Debian root configures its packages under emulation. The layouts
# are made once and kept in CACHE_DIR; only the pushes are repeated per registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reg=${1:?usage: multi-arch-bases.sh REGISTRY CACHE_DIR}
cache=${2:?usage: multi-arch-bases.sh REGISTRY CACHE_DIR}
dest=(--dest-tls-verify=false)
stamp=2024-01-01T00:00:00Z

grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || {
  echo "no binfmt_misc handler with the F flag for aarch64 (/proc/sys/fs/binfmt_misc/qemu-aarch64):" \
    "apt-get install qemu-user-static binfmt-support" >&2; exit 1; }

# write_index LAYOUT NAME TAG:ARCH[:VARIANT]... — an image index over those tags' manifests,
# written into the layout as NAME (pushed with skopeo copy --all, as make-base-image.sh does).
write_index() {
  python3 - "$@" <<'PY'
import hashlib, json, os, sys
layout, name, entries = sys.argv[1], sys.argv[2], sys.argv[3:]
top = json.load(open(os.path.join(layout, "index.json")))
refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in top["manifests"]}
manifests = []
for spec in entries:
    tag, arch, *variant = spec.split(":")
    m = {k: v for k, v in refs[tag].items() if k != "annotations"}
    m["platform"] = {"architecture": arch, "os": "linux", **({"variant": variant[0]} if variant else {})}
    manifests.append(m)
index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": manifests}, separators=(",", ":")).encode()
digest = hashlib.sha256(index).hexdigest()
with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
    f.write(index)
top["manifests"] = [m for m in top["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] != name]
top["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest,
                         "size": len(index), "annotations": {"org.opencontainers.image.ref.name": name}})
json.dump(top, open(os.path.join(layout, "index.json"), "w"))
PY
}

# --- busybox ------------------------------------------------------------------------------------
bb_layout=$cache/busybox-multi-layout
if [ ! -f "$bb_layout/.done" ]; then
  debs=$cache/debs
  mkdir -p "$debs"
  if ! ls "$debs"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
    dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }
    (cd "$debs" && apt-get download -qq busybox-static:arm64)
  fi
  rm -rf "$bb_layout" "$cache/bb-work"
  mkdir -p "$cache/bb-work"
  skopeo copy -q --src-tls-verify=false "docker://$reg/busybox:1.35" "oci:$bb_layout:amd64"
  umoci unpack --image "$bb_layout:amd64" "$cache/bb-work/amd64" >/dev/null
  dpkg-deb -x "$debs"/busybox-static_*_arm64.deb "$cache/bb-work/deb"
  rootfs=$cache/bb-work/amd64/rootfs
  arm_bb=$cache/bb-work/deb/bin/busybox
  case "$(od -An -tx1 -j18 -N2 "$arm_bb" | tr -d ' ')" in b700) ;; *) echo "$arm_bb is not aarch64" >&2; exit 1;; esac
  # The same root with the arm64 binary: the applet links are the arm64 busybox's own list (run
  # under emulation), so the root holds exactly what that binary provides.
  find "$rootfs" -type l -lname /bin/busybox -delete
  install -m 0755 "$arm_bb" "$rootfs/bin/busybox"
  for applet in $("$arm_bb" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
  done
  find "$rootfs" -exec touch -h -d "$stamp" {} +
  umoci new --image "$bb_layout:arm64"
  umoci unpack --image "$bb_layout:arm64" "$cache/bb-work/arm64" >/dev/null
  rm -rf "$cache/bb-work/arm64/rootfs"
  mv "$rootfs" "$cache/bb-work/arm64/rootfs"
  umoci repack --image "$bb_layout:arm64" --history.created_by \
    "busybox-static:arm64 rootfs (bench/lib/multi-arch-bases.sh)" --history.created "$stamp" "$cache/bb-work/arm64"
  umoci config --image "$bb_layout:arm64" --no-history --architecture arm64 --os linux \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.cmd sh --created "$stamp" --author trowel-tests
  write_index "$bb_layout" multi amd64:amd64 arm64:arm64:v8
  rm -rf "$cache/bb-work"
  touch "$bb_layout/.done"
fi
skopeo copy -q --all "${dest[@]}" "oci:$bb_layout:multi" "docker://$reg/busybox-multi:1.35"

# --- Debian bookworm minbase ----------------------------------------------------------------------
deb_layout=$cache/debian-multi-layout
if [ ! -f "$deb_layout/.done" ]; then
  [ -f "$cache/debian-layout/.done" ] || { echo "$cache/debian-layout missing: run base-images.sh first" >&2; exit 1; }
  "$here/debian-rootfs.sh" "$cache/debian-bookworm-minbase-arm64.tar" arm64
  rm -rf "$deb_layout" "$cache/debian-arm64-bundle"
  skopeo copy -q "oci:$cache/debian-layout:base" "oci:$deb_layout:amd64"
  umoci new --image "$deb_layout:arm64"
  umoci unpack --image "$deb_layout:arm64" "$cache/debian-arm64-bundle" >/dev/null
  tar --numeric-owner --xattrs -C "$cache/debian-arm64-bundle/rootfs" -xf "$cache/debian-bookworm-minbase-arm64.tar"
  umoci repack --image "$deb_layout:arm64" --history.created_by \
    "debootstrap --arch=arm64 --foreign --variant=minbase bookworm (second stage under QEMU)" \
    --history.created "$stamp" "$cache/debian-arm64-bundle"
  umoci config --image "$deb_layout:arm64" --no-history --architecture arm64 --os linux \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.cmd bash --created "$stamp" --author trowel-bench
  write_index "$deb_layout" multi amd64:amd64 arm64:arm64:v8
  rm -rf "$cache/debian-arm64-bundle"
  touch "$deb_layout/.done"
fi
skopeo copy -q --all "${dest[@]}" "oci:$deb_layout:multi" "docker://$reg/debian-multi:bookworm-minbase"
echo "pushed $reg/{busybox-multi:1.35,debian-multi:bookworm-minbase} (indexes: linux/amd64, linux/arm64/v8)"
