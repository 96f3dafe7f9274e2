#!/usr/bin/env bash
# A fresh pod's unchanged rebuild of the cross-compiling layout for two platforms, two trowel
# binaries alternating (issue 17): `deps` on $BUILDPLATFORM (a Debian base, shared by both
# targets) copies a manifest and installs; `build`, one per target, is built FROM deps, copies
# 50 source files (1.3 MB) and builds for $TARGETARCH; each image (busybox, an index base over
# amd64 and arm64) copies the result. kaniko's usual flags (--cache=true --cache-repo, no
# --cache-copy-layers); every build has a work dir and cache dir of its own under /dev/shm
# (a fresh pod), the cache repository is the binary's own and kept. One cold build per binary,
# then PAIRS pairs of unchanged rebuilds, the order swapping every pair. Prints one line per
# rebuild: wall ms, load, trowel's summary, how many roots it unpacked or mounted.
#
#   bench/lib/ab-cross-platform.sh REGISTRY BIN_A BIN_B [PAIRS]
#
# REGISTRY must hold debian:bookworm-minbase (bench/lib/base-images.sh) and busybox:multi (an
# amd64+arm64 index, as the test registry's; or busybox-multi:1.35 from multi-arch-bases.sh,
# given as MULTI=…).
set -euo pipefail
reg=${1:?usage: ab-cross-platform.sh REGISTRY BIN_A BIN_B [PAIRS]}
a=${2:?}; b=${3:?}; pairs=${4:-5}
multi=${MULTI:-$reg/busybox:multi}
work=$(mktemp -d /dev/shm/ab-cross.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx/src"
echo '{"name":"x"}' > "$work/ctx/package.json"
for i in $(seq 1 50); do head -c 20000 /dev/urandom | base64 > "$work/ctx/src/f$i.txt"; done
cat > "$work/ctx/Dockerfile" <<D
FROM --platform=\$BUILDPLATFORM $reg/debian:bookworm-minbase AS deps
WORKDIR /app
COPY package.json ./
RUN cp package.json deps.txt
FROM deps AS build
ARG TARGETARCH
COPY src/ ./src/
RUN echo \$TARGETARCH > arch && cat src/* arch > dist.txt
FROM $multi
COPY --from=build /app/dist.txt /out/
D
suffix=$RANDOM
build() { # binary tag
  local s="$work/state-$2"
  rm -rf "$s"; mkdir -p "$s"
  local t0; t0=$(date +%s%N)
  "$1" build --context "$work/ctx" --platform linux/amd64,linux/arm64 --destination "$reg/ab-cross/$2:1" \
    --cache=true --cache-repo "$reg/ab-cross/$2-cache" --work-dir "$s/work" --cache-dir "$s/cache" \
    --log-format text > "$s.log" 2>&1 || { echo "$2: build failed"; tail -3 "$s.log"; exit 1; }
  echo "$2 $(( ($(date +%s%N) - t0) / 1000000 )) ms load=$(cut -d' ' -f1 /proc/loadavg)" \
    "$(grep -o 'in [0-9.]*s (.*' "$s.log" | head -1) unpacks=$(grep -c 'Unpacked\|Mounted' "$s.log" || true)"
}
build "$a" "a$suffix" > /dev/null; build "$b" "b$suffix" > /dev/null
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 0 ]; then build "$a" "a$suffix"; build "$b" "b$suffix"; else build "$b" "b$suffix"; build "$a" "a$suffix"; fi
done
