#!/usr/bin/env bash
# A builder that runs again and makes the same files (issue 17: do only the work that changed),
# two trowel binaries alternating. W5's layout (a Debian builder making 2,000 small files, a
# tarball of /usr/share and a copy of /usr/bin; a busybox image with three `COPY --from` of
# them, 30 MB) with `ARG STAMP` and a last builder RUN that writes it to /stamp, which nothing
# copies: a build arg that changes per pipeline (a commit id, a date) in a builder's RUN. kaniko's
# usual flags (--cache=true --cache-repo, no --cache-copy-layers); state (work dir and cache
# dir) kept per binary, in /dev/shm, the cache repository the binary's own. One build per binary
# with STAMP=0, then PAIRS pairs of rebuilds each with a new STAMP, the order swapping every
# pair. Prints one line per rebuild: wall ms, load, trowel's summary, the cache's counts.
#
#   bench/lib/ab-builder-edit.sh REGISTRY BIN_A BIN_B [PAIRS]
#
# REGISTRY must hold debian:bookworm-minbase and busybox:1.35 (bench/lib/base-images.sh).
set -euo pipefail
reg=${1:?usage: ab-builder-edit.sh REGISTRY BIN_A BIN_B [PAIRS]}
a=${2:?}; b=${3:?}; pairs=${4:-5}
work=$(mktemp -d /dev/shm/ab-builder-edit.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<D
FROM $reg/debian:bookworm-minbase AS builder
RUN mkdir -p /out/files && i=0; while [ \$i -lt 2000 ]; do echo "artifact \$i" > /out/files/a\$i.txt; \\
    i=\$((i+1)); done
RUN tar -czf /out/usr-share.tar.gz -C /usr share
RUN cp -a /usr/bin /out/bin
ARG STAMP
RUN echo "\$STAMP" > /stamp
FROM $reg/busybox:1.35
COPY --from=builder /out/files /opt/files
COPY --from=builder /out/usr-share.tar.gz /opt/usr-share.tar.gz
COPY --from=builder /out/bin /opt/debian-bin
RUN ls /opt/files | wc -l > /opt/count
D
suffix=$RANDOM
build() { # binary tag stamp
  local s="$work/state-$2"
  mkdir -p "$s"
  local t0; t0=$(date +%s%N)
  "$1" build --context "$work/ctx" --destination "$reg/ab-builder-edit/$2:1" --build-arg "STAMP=$3" \
    --cache=true --cache-repo "$reg/ab-builder-edit/$2-cache" --work-dir "$s/work" --cache-dir "$s/cache" \
    --isolation chroot --log-format text > "$s.log" 2>&1 || { echo "$2: build failed"; tail -3 "$s.log"; exit 1; }
  echo "$2 $(( ($(date +%s%N) - t0) / 1000000 )) ms load=$(cut -d' ' -f1 /proc/loadavg)" \
    "$(grep -o 'in [0-9.]*s (.*' "$s.log" | head -1) $(grep -o 'Cache: .*' "$s.log" | head -1)"
}
build "$a" "a$suffix" 0 > /dev/null; build "$b" "b$suffix" 0 > /dev/null
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 0 ]; then build "$a" "a$suffix" "$i"; build "$b" "b$suffix" "$i"
  else build "$b" "b$suffix" "$i"; build "$a" "a$suffix" "$i"; fi
done
