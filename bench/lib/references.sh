#!/usr/bin/env bash
# Physical references on this machine for the Debian minbase root (the W4 and W6 base), as JSON:
# a stat-only walk (the snapshot-cost floor), reading every file, sha256 of every file, tar, and
# tar | gzip -6. Medians of 5 runs with a warm page cache (the state a snapshot after a RUN sees).
# With W6_CONTEXT, also W6's three RUN commands run by sh in a chroot of that root holding the
# context's src/ at /src, with no builder at all (`w6_runs_s`): a floor under every tool's W6 build,
# the same commands each tool's RUN steps run (W6 cold and edit rebuild all 320 objects).
#
#   bench/lib/references.sh DEBIAN_ROOTFS.tar ROOT_DIR [W6_CONTEXT]
set -euo pipefail
tarball=${1:?usage: references.sh DEBIAN_ROOTFS.tar ROOT_DIR [W6_CONTEXT]}
root=${2:?usage: references.sh DEBIAN_ROOTFS.tar ROOT_DIR [W6_CONTEXT]}
w6=${3:-}
rm -rf "$root"
mkdir -p "$root"
tar --numeric-owner -C "$root" -xf "$tarball"

median5() { # command...
  local times=()
  for _ in 1 2 3 4 5; do
    local t0 t1
    t0=$(date +%s%N)
    bash -c "$1" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=("$((t1 - t0))")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p | awk '{printf "%.4f", $1 / 1e9}'
}
bash -c "find '$root' -xdev -type f -print0 | xargs -0 cat > /dev/null"  # warm the page cache
entries=$(find "$root" -xdev | wc -l)
bytes=$(du -sb "$root" | cut -f1)
walk=$(median5 "find '$root' -xdev -printf '%s %T@\n'")
read_all=$(median5 "find '$root' -xdev -type f -print0 | xargs -0 cat | cat > /dev/null")
sha=$(median5 "find '$root' -xdev -type f -print0 | xargs -0 sha256sum")
tar_t=$(median5 "tar -C '$root' -cf - . | cat > /dev/null")
gz=$(median5 "tar -C '$root' -cf - . | gzip -6 | cat > /dev/null")
w6_runs=null
if [ -n "$w6" ]; then
  cp -a "$w6/src" "$root/src"  # the Dockerfile's COPY src/ /src/
  # The Dockerfile's RUN lines as they are (WORKDIR /src), from a clean /out each time.
  w6_runs=$(median5 "rm -rf '$root/out' && chroot '$root' sh -c \"cd /src && sh ./build.sh compile && sh ./build.sh link && cut -d' ' -f1 /out/app.sha256 > /out/BUILD_ID\"")
  # A chroot that failed would time nothing: no figure rather than a wrong one.
  [ -s "$root/out/BUILD_ID" ] || w6_runs=null
fi
printf '{"root": "%s", "entries": %s, "bytes": %s, "find_stat_walk_s": %s, "read_all_s": %s, "sha256_all_s": %s, "tar_s": %s, "tar_gzip6_s": %s, "w6_runs_s": %s, "uptime": "%s"}\n' \
  "$root" "$entries" "$bytes" "$walk" "$read_all" "$sha" "$tar_t" "$gz" "$w6_runs" "$(uptime)"
rm -rf "$root"
