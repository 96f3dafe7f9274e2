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
# push it (seconds). minbase is debootstrap's; every other flavour is minbase's layer plus one
# layer of packages installed with apt-get in a chroot (one debootstrap per machine, not one per
# flavour: on a cold, busy CI machine that was most of the suite's time). The first run needs the
# Debian mirror (the machine's apt source, or DEBIAN_MIRROR). A lock per flavour lets concurrent
# test runs share the work; a half-made image is never marked done.
#
#   scripts/make-debian-image.sh --prepare FLAVOUR...   makes the layouts only (no registry):
#                                                       scripts/test.sh starts it while it compiles
set -euo pipefail
if [ "${1:-}" = "--prepare" ]; then
  shift
  for f in "$@"; do "$0" --layout "$f" >/dev/null || echo "debian:$f could not be made (the test that needs it will say why)" >&2; done
  exit 0
fi
if [ "${1:-}" = "--layout" ]; then
  reg="" flavour=${2:?usage: make-debian-image.sh --layout FLAVOUR}
else
  reg=${1:?usage: make-debian-image.sh REGISTRY FLAVOUR}
  flavour=${2:?usage: make-debian-image.sh REGISTRY FLAVOUR}
fi
cache=${TROWEL_FIXTURES:-/var/cache/trowel-tests}
pkgs="" apt_pkgs=""
case "$flavour" in
  # (`pkgs` and `apt_pkgs` name the image's layout; both are installed with apt-get on minbase.)
  minbase) pkgs="" ;;
  python) pkgs="python3-pip,ca-certificates" ;;
  go) pkgs="golang-go,ca-certificates" ;;
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
install="${pkgs//,/ }${apt_pkgs:+ $apt_pkgs}"
# A derived flavour starts from minbase, made first (under minbase's own lock).
base_layout=""
if [ "$flavour" != minbase ] && [ ! -f "$layout/.done" ]; then
  base_layout=$("$0" --layout minbase)
fi
exec 9>"$cache/.lock-$flavour"
flock 9

if [ ! -f "$layout/.done" ]; then
  work=$(mktemp -d "$cache/build-$flavour.XXXXXX")
  bundle=$work/bundle
  root=$bundle/rootfs
  # Nothing mounted into the root may outlive the script, and removal never crosses a mount.
  release() {
    for m in var/lib/apt/lists var/cache/apt/archives dev/pts dev proc sys; do
      if mountpoint -q "$root/$m" 2>/dev/null; then umount "$root/$m" || umount -l "$root/$m"; fi
      if mountpoint -q "$root/$m" 2>/dev/null; then echo "cannot unmount $root/$m" >&2; return 1; fi
    done
  }
  trap 'release && rm -rf --one-file-system "$work"' EXIT
  trap 'exit 1' INT TERM
  rm -rf "$layout"
  if [ "$flavour" = minbase ]; then
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
    echo "making debian:minbase (debootstrap minbase bookworm; minutes, once per machine)" >&2
    debootstrap --variant=minbase --cache-dir="$cache/debs" bookworm "$work/root" "$mirror" \
      >"$work/log" 2>&1 || { root=$work/root; release; tail -30 "$work/log" >&2; exit 1; }
    umoci init --layout "$layout"
    umoci new --image "$layout:base"
    umoci unpack --image "$layout:base" "$bundle" >/dev/null
    rm -rf "$root"
    mv "$work/root" "$root"
    history="debootstrap --variant=minbase bookworm"
  else
    echo "making debian:$flavour (debian:minbase + apt-get install $install; minutes, once per machine)" >&2
    cp -a "$base_layout" "$layout"
    rm -f "$layout/.done"
    umoci unpack --image "$layout:base" "$bundle" >/dev/null
    touch "$work/unpacked"
    # Package lists and downloads are shared by every flavour, as debootstrap's are.
    mkdir -p "$cache/apt-archives/partial" "$cache/apt-lists/partial"
    mount -t proc proc "$root/proc"
    mount --bind /dev "$root/dev"
    mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
    mount --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # The machine's apt source (a mirror the machine can reach) over debootstrap's default.
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
      echo "deb $DEBIAN_MIRROR bookworm main" >"$root/etc/apt/sources.list"
    fi
    { chroot "$root" apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends $install; } \
      >>"$work/log" 2>&1 || { release; tail -30 "$work/log" >&2; exit 1; }
    rm -f "$root/usr/sbin/policy-rc.d"
    release || exit 1
    history="apt-get install $install"
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
  if [ "$flavour" = minbase ]; then
    find "$root" -xdev -exec touch -h -d '2024-01-01T00:00:00Z' {} +
  else
    # Only what the install wrote: the rest is minbase's layer, unchanged.
    find "$root" -xdev -newer "$work/unpacked" -exec touch -h -d '2024-01-01T00:00:00Z' {} +
  fi
  umoci repack --image "$layout:base" --history.created 2024-01-01T00:00:00Z \
    --history.created_by "$history" "$bundle"
  if [ "$flavour" = minbase ]; then
    # node reads its own CA list unless told of the system's.
    umoci config --image "$layout:base" --no-history \
      --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --config.env 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
      --config.cmd bash --created 2024-01-01T00:00:00Z --author trowel-tests
  fi
  umoci gc --layout "$layout"
  touch "$layout/.done"
fi
if [ -z "$reg" ]; then
  echo "$layout"
  exit 0
fi
skopeo copy -q --dest-tls-verify=false "oci:$layout:base" "docker://$reg/debian:$flavour"
echo "$reg/debian:$flavour"
