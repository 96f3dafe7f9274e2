#!/usr/bin/env bash
# Makes the Debian bookworm minbase root filesystem used as the W4/W5 base image, once, and keeps
# it as a normalised tarball under the bench work dir so later runs (and the other tools) all
# start from the same bytes.
#
#   bench/lib/debian-rootfs.sh OUT.tar [ARCH]
#
# ARCH (a Debian architecture, default: the machine's) other than the machine's own is made the
# way a foreign root is made on Debian: `debootstrap --foreign` unpacks the packages, then its
# second stage (maintainer scripts, dpkg --configure) runs inside the root under QEMU user
# emulation. That needs binfmt_misc handlers with the F flag (Debian's qemu-user-static registers
# them): the kernel opens the interpreter when the handler is registered, so it keeps working in
# a chroot that has no QEMU binary of its own.
#
# The mirror is the machine's own Debian mirror (from apt's sources) unless DEBIAN_MIRROR is set.
# Normalisation: fixed mtimes, no apt lists/caches/logs, no machine-id: two runs against the same
# mirror state give the same tarball.
set -euo pipefail
out=${1:?usage: debian-rootfs.sh OUT.tar [ARCH]}
arch=${2:-$(dpkg --print-architecture)}
[ -s "$out" ] && exit 0
foreign=
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  foreign=1
  qemu=$(dpkg-architecture -a "$arch" -q DEB_HOST_GNU_CPU 2>/dev/null)  # arm64 -> aarch64
  grep -qs '^flags:.*F' "/proc/sys/fs/binfmt_misc/qemu-$qemu" || {
    echo "no binfmt_misc handler with the F flag for $arch (/proc/sys/fs/binfmt_misc/qemu-$qemu):" \
      "install qemu-user-static (apt-get install qemu-user-static binfmt-support)" >&2; exit 1; }
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 sources first, then the one-line format.
  mirror=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources: set DEBIAN_MIRROR" >&2; exit 1; }

work=$(mktemp -d "$(dirname "$out")/debootstrap.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
if [ -z "$foreign" ]; then
  echo "debootstrap --variant=minbase bookworm from the apt mirror (a few minutes)" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/log" 2>&1 || {
    tail -20 "$work/log" >&2; exit 1; }
else
  echo "debootstrap --arch=$arch --foreign --variant=minbase bookworm, then its second stage under" \
    "QEMU emulation (ten minutes or more)" >&2
  debootstrap --arch="$arch" --foreign --variant=minbase bookworm "$root" "$mirror" >"$work/log" 2>&1 || {
    tail -20 "$work/log" >&2; exit 1; }
  # In a mount namespace of its own: the second stage mounts /proc and /sys for dpkg's maintainer
  # scripts, and those mounts must not outlive it or reach the machine's mount table.
  unshare --mount --propagation private chroot "$root" /debootstrap/debootstrap --second-stage \
    >>"$work/log" 2>&1 || {
    tail -20 "$work/log" >&2; tail -20 "$root/debootstrap/debootstrap.log" >&2 || true; exit 1; }
fi
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/* "$root"/debootstrap "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
: > "$root/etc/machine-id"
find "$root" -xdev -exec touch -h -d '2024-01-01T00:00:00Z' {} +
tar --sort=name --numeric-owner --xattrs -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "debian rootfs: $(tar -tf "$out" | wc -l) entries, $(du -h "$out" | cut -f1)" >&2
