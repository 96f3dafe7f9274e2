#!/usr/bin/env bash
# Debian bookworm base images for the tests that need real package managers — the corpus cases
# with apt, pip, cargo, go and npm cache mounts, the ssh agent test's `git clone` — made with
# independent tools only (debootstrap, umoci, skopeo; never trowel) and pushed to a registry.
#
#   scripts/make-debian-image.sh REGISTRY FLAVOUR        pushes REGISTRY/debian:FLAVOUR
#
#   FLAVOUR   packages on top of debootstrap's minbase
#   minbase   (none: apt itself)
#   python    python3-pip
#   go        golang-go ca-certificates
#   rust      cargo (with rustc)
#   node      nodejs npm ca-certificates
#   git       git openssh-client ca-certificates
#
# Each image is made once per machine and kept as an OCI layout under
# ${TROWEL_FIXTURES:-/var/cache/trowel-tests}, with debootstrap's downloads, so later runs only
# push it (seconds). The first run needs the Debian mirror (the machine's apt source, or
# DEBIAN_MIRROR) and takes a few minutes per flavour. A lock per flavour lets concurrent test
# runs share the work; a half-made image is never marked done.
set -euo pipefail
reg=${1:?usage: make-debian-image.sh REGISTRY FLAVOUR}
flavour=${2:?usage: make-debian-image.sh REGISTRY FLAVOUR}
cache=${TROWEL_FIXTURES:-/var/cache/trowel-tests}
case "$flavour" in
  minbase) pkgs="" ;;
  python) pkgs="python3-pip" ;;
  go) pkgs="golang-go,ca-certificates" ;;
  rust) pkgs="cargo" ;;
  node) pkgs="nodejs,npm,ca-certificates" ;;
  git) pkgs="git,openssh-client,ca-certificates" ;;
  *) echo "unknown flavour $flavour (minbase, python, go, rust, node, git)" >&2; exit 2 ;;
esac
for tool in debootstrap umoci skopeo flock; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
mkdir -p "$cache/debs"
layout=$cache/debian-$flavour
exec 9>"$cache/.lock-$flavour"
flock 9

if [ ! -f "$layout/.done" ]; then
  mirror=${DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  fi
  if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  work=$(mktemp -d "$cache/build-$flavour.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  root=$work/root
  echo "making debian:$flavour (debootstrap minbase bookworm${pkgs:+ + $pkgs}; minutes, once per machine)" >&2
  debootstrap --variant=minbase ${pkgs:+--include=$pkgs} --cache-dir="$cache/debs" bookworm "$root" "$mirror" \
    >"$work/log" 2>&1 || { tail -30 "$work/log" >&2; exit 1; }
  # What an image should not carry (as Debian's own images): package lists, caches, logs.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/debootstrap "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
  : >"$root/etc/machine-id"
  find "$root" -xdev -exec touch -h -d '2024-01-01T00:00:00Z' {} +
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:base"
  umoci unpack --image "$layout:base" "$work/bundle" >/dev/null
  rm -rf "$work/bundle/rootfs"
  mv "$root" "$work/bundle/rootfs"
  umoci repack --image "$layout:base" --history.created 2024-01-01T00:00:00Z \
    --history.created_by "debootstrap --variant=minbase bookworm${pkgs:+ --include=$pkgs}" "$work/bundle"
  umoci config --image "$layout:base" --no-history \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.cmd bash --created 2024-01-01T00:00:00Z --author trowel-tests
  umoci gc --layout "$layout"
  touch "$layout/.done"
fi
skopeo copy -q --dest-tls-verify=false "oci:$layout:base" "docker://$reg/debian:$flavour"
echo "$reg/debian:$flavour"
