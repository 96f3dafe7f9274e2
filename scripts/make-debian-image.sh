#!/usr/bin/env bash
# Debian bookworm base images for the tests that need real package managers — the corpus cases
# with apt, pip, cargo, go and npm cache mounts, the ssh agent test's `git clone` — made with
# independent tools only (debootstrap, umoci, skopeo; never trowel) and pushed to a registry.
#
#   scripts/make-debian-image.sh REGISTRY FLAVOUR        pushes REGISTRY/debian:FLAVOUR
#
#   FLAVOUR   packages on top of debootstrap's minbase
#   minbase   (none: apt itself)
#   python    python3-pip ca-certificates
#   go        golang-go ca-certificates
#   rust      cargo (with rustc; installed with apt-get in a chroot)
#   node      nodejs npm ca-certificates (installed with apt-get in a chroot)
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
pkgs="" apt_pkgs=""
case "$flavour" in
  minbase) pkgs="" ;;
  python) pkgs="python3-pip,ca-certificates" ;;
  go) pkgs="golang-go,ca-certificates" ;;
  # rustc's and npm's dependencies fail to configure in debootstrap's --include pass: apt
  # installs them.
  rust) apt_pkgs="cargo" ;;
  node) apt_pkgs="nodejs npm ca-certificates" ;;
  git) pkgs="git,openssh-client,ca-certificates" ;;
  *) echo "unknown flavour $flavour (minbase, python, go, rust, node, git)" >&2; exit 2 ;;
esac
for tool in debootstrap umoci skopeo flock; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
mkdir -p "$cache/debs"
# The images trust what this machine trusts (its CA bundle replaces Debian's, as a company's
# base images carry its TLS-intercepting proxy's CA): package registries are reached as the
# machine reaches them. Named after the package list and that bundle: either changing makes a
# new image.
host_ca=/etc/ssl/certs/ca-certificates.crt
ca_sum=$( { [ -f "$host_ca" ] && sha256sum <"$host_ca"; } | cut -c1-12)
layout=$cache/debian-$flavour-$(printf '%s' "$pkgs${apt_pkgs:+ apt:$apt_pkgs} ca:$ca_sum" | sha256sum | cut -c1-12)
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
  root=$work/root
  # Nothing mounted into the root may outlive the script, and removal never crosses a mount.
  release() {
    for m in var/cache/apt/archives dev/pts dev proc sys; do
      if mountpoint -q "$root/$m" 2>/dev/null; then umount "$root/$m" || umount -l "$root/$m"; fi
      if mountpoint -q "$root/$m" 2>/dev/null; then echo "cannot unmount $root/$m" >&2; return 1; fi
    done
  }
  trap 'release && rm -rf --one-file-system "$work"' EXIT
  echo "making debian:$flavour (debootstrap minbase bookworm${pkgs:+ + $pkgs}${apt_pkgs:+ + apt: $apt_pkgs}; minutes, once per machine)" >&2
  debootstrap --variant=minbase ${pkgs:+--include=$pkgs} --cache-dir="$cache/debs" bookworm "$root" "$mirror" \
    >"$work/log" 2>&1 || { tail -30 "$work/log" >&2; exit 1; }
  if [ -n "$apt_pkgs" ]; then
    mkdir -p "$cache/apt-archives/partial"
    mount -t proc proc "$root/proc"
    mount --bind /dev "$root/dev"
    mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    { chroot "$root" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends $apt_pkgs; } \
      >>"$work/log" 2>&1 || { tail -30 "$work/log" >&2; exit 1; }
    rm -f "$root/usr/sbin/policy-rc.d"
    release || exit 1
  fi
  release || exit 1 # (a failed debootstrap may leave its own mounts behind)
  if [ -f "$host_ca" ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp "$host_ca" "$root/etc/ssl/certs/ca-certificates.crt"
  fi
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
    --history.created_by "debootstrap --variant=minbase bookworm${pkgs:+ --include=$pkgs}${apt_pkgs:+; apt-get install $apt_pkgs}" "$work/bundle"
  # node reads its own CA list unless told of the system's.
  umoci config --image "$layout:base" --no-history \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --config.env 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --config.cmd bash --created 2024-01-01T00:00:00Z --author trowel-tests
  umoci gc --layout "$layout"
  touch "$layout/.done"
fi
skopeo copy -q --dest-tls-verify=false "oci:$layout:base" "docker://$reg/debian:$flavour"
echo "$reg/debian:$flavour"
