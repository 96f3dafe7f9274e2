#!/usr/bin/env bash
# Times how build roots are made on the bench's W4 shape (Debian minbase, three RUNs that touch
# three files), with the unpacked-layer store and without it, on the file system of STATE_DIR
# (mount a tmpfs or a fresh journaled ext4 there first: the figures are the disk's).
#
#   scripts/measure-roots.sh TROWEL BASE_IMAGE STATE_DIR [REPS]
#
#   cold          nothing local: no store entries, no cache (the first build on a machine)
#   warm-change   the store filled by an earlier build, a RUN changed so the stage runs again
#                 on the unchanged base (what a CI job does after the first)
#
# Each cell is built REPS times (default 3) and the median printed, with the median time the
# log's unpack/mount line gives for making the root. Without the store, "warm" is the same
# work as cold (a fresh directory is unpacked every time): that is the point of the store.
# Runs trowel in chroot isolation, as root, with --no-push (nothing to push is measured here).
set -euo pipefail
trowel=${1:?usage: measure-roots.sh TROWEL BASE_IMAGE STATE_DIR [REPS]}
base=${2:?base image, e.g. 127.0.0.1:5000/debian:minbase}
state=${3:?state dir}
reps=${4:-3}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

dockerfile() { # $1: what the last RUN echoes (changed to make the stage run again)
  printf 'FROM %s\nRUN touch /tmp/bench-touched\nRUN echo %s > /etc/bench-echo\nRUN rm /etc/issue\n' "$base" "$1" \
    >"$ctx/Dockerfile"
}

# One build; prints "<wall seconds> <root ms>".
build() { # $1: cache dir
  local t0 t1 out ms
  t0=$(date +%s.%N)
  out=$("$trowel" build --isolation chroot --no-push --context "$ctx" --work-dir "$state/work" \
    --cache-dir "$1" 2>&1) || { echo "$out" >&2; exit 1; }
  t1=$(date +%s.%N)
  ms=$(echo "$out" | grep -oE '(Unpacked|Mounted) .* in [0-9]+ ms' | grep -oE '[0-9]+ ms' | tail -1 | cut -d' ' -f1)
  echo "$(echo "$t1 - $t0" | bc) ${ms:-0}"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

cell() { # $1: label, $2: store|none, $3: cold|warm-change
  local walls=() roots=() r
  for i in $(seq "$reps"); do
    local cache="$state/none"
    if [ "$2" = store ]; then cache="$state/cache"; mkdir -p "$cache"; fi
    if [ "$3" = cold ]; then
      rm -rf "$state/cache" "$state/work"
      [ "$2" = store ] && mkdir -p "$cache"
      dockerfile "cold-$i"
    else
      dockerfile "fill-$i"
      build "$cache" >/dev/null
      dockerfile "changed-$i"
    fi
    sync
    r=$(build "$cache")
    walls+=("${r% *}")
    roots+=("${r#* }")
  done
  printf '%-28s wall %6.2f s   root %6s ms\n' "$1" \
    "$(printf '%s\n' "${walls[@]}" | median)" "$(printf '%s\n' "${roots[@]}" | median)"
}

mkdir -p "$state"
echo "W4 shape on $(findmnt -no FSTYPE,OPTIONS --target "$state" | cut -c1-60), $reps reps, medians"
cell "no store, cold" none cold
cell "no store, warm-change" none warm-change
cell "store, cold" store cold
cell "store, warm-change" store warm-change
rm -rf "$state/cache" "$state/work"
