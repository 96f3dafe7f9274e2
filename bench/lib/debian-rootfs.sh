#!/usr/bin/env bash
# Makes the Debian bookworm minbase root filesystem used as the W4/W5 base image, once, and keeps
# it as a normalised tarball under the bench work dir so later runs (and the other tools) all
# start from the same bytes.
#
#   bench/lib/debian-rootfs.sh OUT.tar
#
# The mirror is the machine's own Debian mirror (from apt's sources) unless DEBIAN_MIRROR is set.
# Normalisation: fixed mtimes, no apt lists/caches/logs, no machine-id: two runs against the same
# mirror state give the same tarball.
set -euo pipefail
out=${1:?usage: debian-rootfs.sh OUT.tar}
[ -s "$out" ] && exit 0
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
echo "debootstrap --variant=minbase bookworm from the apt mirror (a few minutes)" >&2
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/log" 2>&1 || {
  tail -20 "$work/log" >&2; exit 1; }
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/log/* "$root"/debootstrap "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
: > "$root/etc/machine-id"
find "$root" -xdev -exec touch -h -d '2024-01-01T00:00:00Z' {} +
tar --sort=name --numeric-owner --xattrs -C "$root" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "debian rootfs: $(tar -tf "$out" | wc -l) entries, $(du -h "$out" | cut -f1)" >&2
