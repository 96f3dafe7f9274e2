#!/usr/bin/env bash
# trowel vs buildah (and kaniko when KANIKO_EXECUTOR points at its executor binary): one command
# from a fresh Debian machine to the results table.
#
#   bench/run.sh [--reps N] [--tables ext4,tmpfs] [--flags kaniko,best] [--workloads W1,W2,...]
#                [--modes cold,warm,edit,nocache] [--extra-reps N] [--no-extra] [--no-profile]
#                [--no-profile-extras] [--ext4 image|root] [--quick] [--no-readme] [--multi-platform]
#                [--tools trowel,buildah,kaniko] [--resume RUN_DIR] [--container] [--rootless]
#
#   --tables       which file systems hold the tools' state: ext4 (a fresh journaled image), tmpfs,
#                  or both (default; --fs is the old name)
#   --flags        flag sets (default both): kaniko = kaniko's usual GitLab flags (--cache=true
#                  --cache-repo, no --cache-copy-layers) for kaniko and trowel; best = with
#                  --cache-copy-layers=true (kaniko also --cache-run-layers). buildah (--layers) is
#                  the same in both and runs once per repetition and workload
#   --modes        cold, warm (unchanged rebuild), edit (W6 only: one source file changed, then
#                  rebuilt with the warm state), fresh (last in a chain: every tool's local state
#                  wiped, cache repository and destination kept: a GitLab job in a fresh pod; not
#                  in the default run), nocache (caching off; not in the default run)
#   --resume DIR   continue an interrupted run in its results directory: every chain (a tool's
#                  cold, warm, edit builds) already recorded there is skipped
#   --quick        1 repetition of W1 and W2 in cold/warm on ext4, kaniko's flags, no extras (a smoke test)
#   --multi-platform  the two-platform cells only: W1x2 and W4x2 (W1 and W4 built for linux/amd64
#                  and linux/arm64 on index bases, one index pushed) next to W1 and W4, on ext4, no
#                  extras and no profiling pass; arm64's RUNs run under QEMU (binfmt_misc). Its
#                  tables go to bench/results/multiplatform/ and README's two-platform section
#   --tools        which builders (default: trowel, buildah, and kaniko with KANIKO_EXECUTOR);
#                  trowel-ctr is trowel with container isolation, in a fresh crun container per
#                  build as kaniko is run; trowel-rl is trowel with rootless isolation as an
#                  ordinary user (neither in the default run)
#   --container    container isolation measured apart: trowel-ctr next to kaniko (run the same way)
#                  and trowel's chroot isolation, W4, W5 and W6 cold and warm, kaniko's flags, both
#                  tables, no extras, no profiling pass, README untouched (about 10 minutes per
#                  repetition); its tables ("Container isolation") are in the run's tables.md
#   --rootless     rootless isolation measured apart (issue 19): trowel-rl (--isolation rootless,
#                  run as the ordinary user trowel-rl, made with a subuid/subgid range if missing)
#                  next to trowel's chroot isolation, W1-W5 cold and warm, kaniko's flags, both
#                  tables, no extras, no profiling pass, README untouched; its tables ("Rootless vs
#                  chroot", ratio rootless / chroot per cell) are in the run's tables.md
#   --extra-reps   repetitions of the extra workloads (BIG: one 2 GiB file; MANY: 100,000 files in
#                  the base), run in cold mode on ext4 (default 3; 0 skips them)
#   --no-readme    leave bench/README.md alone (results still go to the results directory)
#   --no-profile-extras  the profiling pass skips BIG and MANY (saves ~5 minutes)
#   --ext4 image|root  where the ext4 table keeps the tools' state: `image` (default) is a fresh
#                  journaled ext4 (mkfs.ext4 defaults) in a loop-mounted file under BENCH_WORK;
#                  `root` is BENCH_WORK's own file system as it is. On a journal-less ext4 (as this
#                  machine kind's root is) the kernel skips inodes deleted in the last 60-360 s on
#                  every file creation (ext4's recently_deleted()), so each build's timing depends
#                  on how many files the previous one deleted.
#
# After the ext4 table, a profiling pass runs trowel alone with --trace once per workload (cold,
# warm): its traces give the time breakdown and snapshot statistics; tracing is not free, so the
# timed comparison runs trowel without it.
#
# Environment: BENCH_WORK (work dir, default /var/tmp/trowel-bench: registry, base images,
# contexts, tool state, results; it must be on ext4 for the ext4 table), KANIKO_EXECUTOR,
# DEBIAN_MIRROR (default: the machine's apt mirror), CARGO_TARGET_DIR, TROWEL_BIN (a trowel
# binary to measure instead of building one).
#
# Duration on 2 shared cores: one repetition of W1-W6 with trowel, buildah and kaniko in both flag
# sets is 10-15 minutes per table; the default run (3 repetitions, both tables, BIG and MANY, the
# profiling pass) about 1 h 45 min. --resume continues an interrupted run. Do not edit these files
# while it runs (bash and each bench.py pass read them as they go): run a copy, e.g.
# `git archive HEAD bench scripts | tar -x -C DIR` (kaniko's container is started with
# scripts/crun-run.sh).
#
# Every run's raw data lands in $BENCH_WORK/results/<timestamp>/ (results.jsonl with uptime
# before/after every build, /usr/bin/time -v reports, logs, trowel traces); bench/results/latest/
# keeps the JSON Lines and the rendered tables of the latest full run, and bench/README.md's
# results section is regenerated from them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
reps=3 fs=both wls=W1,W2,W3,W4,W5,W6 modes=cold,warm,edit extra_reps=3 readme=1 ext4=image pextras=1
multi=0 profile=1 tools= flags=kaniko,best resume=
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2;;
    --fs|--tables) fs=$2; shift 2;;
    --flags) flags=$2; shift 2;;
    --resume) resume=$2; shift 2;;
    --no-profile) profile=0; shift;;
    --workloads) wls=$2; shift 2;;
    --modes) modes=$2; shift 2;;
    --extra-reps) extra_reps=$2; shift 2;;
    --no-extra) extra_reps=0; shift;;
    --quick) reps=1 fs=ext4 wls=W1,W2 extra_reps=0 readme=0 flags=kaniko; shift;;
    --no-readme) readme=0; shift;;
    --ext4) ext4=$2; shift 2;;
    --no-profile-extras) pextras=0; shift;;
    --multi-platform) multi=1 fs=ext4 wls=W1,W4,W1x2,W4x2 modes=cold,warm,nocache extra_reps=0 profile=0 flags=best; shift;;
    --tools) tools=$2; shift 2;;
    --container) wls=W4,W5,W6 modes=cold,warm extra_reps=0 profile=0 flags=kaniko readme=0
                 tools=trowel,trowel-ctr,kaniko; shift;;
    --rootless) wls=W1,W2,W3,W4,W5 modes=cold,warm extra_reps=0 profile=0 flags=kaniko readme=0
                tools=trowel,trowel-rl; shift;;
    *) sed -n '2,50p' "$0"; exit 2;;
  esac
done
work=${BENCH_WORK:-/var/tmp/trowel-bench}
mkdir -p "$work/cache"
work=$(cd "$work" && pwd)

# --- tools -------------------------------------------------------------------------------------
need=()
for pair in buildah:buildah skopeo:skopeo umoci:umoci docker-registry:docker-registry \
            debootstrap:debootstrap busybox:busybox-static /usr/bin/time:time crun:crun curl:curl \
            python3:python3; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
# The arm64 RUNs of the two-platform cells run under QEMU user emulation (binfmt_misc handlers).
# trowel's own image for its container (scripts/image-context.sh) is made with patchelf.
case ",$tools," in *,trowel-ctr,*) command -v patchelf >/dev/null || need+=(patchelf);; esac
# Rootless isolation maps the user's subordinate range with the setuid helpers (Debian's uidmap);
# setpriv (util-linux) runs it as that user.
case ",$tools," in *,trowel-rl*) command -v newuidmap >/dev/null || need+=(uidmap);; esac
case ",$wls," in *x2,*) command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static binfmt-support);; esac
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ -n "${TROWEL_BIN:-}" ]; then
  trowel=$TROWEL_BIN
else
  echo "==> building trowel (release, optimised like the shipped binary)"
  (cd "$repo" && cargo build --release --quiet)
  trowel=${CARGO_TARGET_DIR:-$repo/target}/release/trowel
fi

# --- registry ----------------------------------------------------------------------------------
if [ -n "$resume" ]; then
  out=$(cd "$resume" && pwd)
  resume_arg=--resume
else
  out=$work/results/$(date +%Y%m%d-%H%M%S)
  resume_arg=
fi
mkdir -p "$out"
if [ -z "${KANIKO_EXECUTOR:-}" ]; then
  echo "warning: KANIKO_EXECUTOR is not set: no kaniko column (bench/README.md says how to build it)" >&2
fi
regdir=$work/registry
rm -rf "$regdir"
mkdir -p "$regdir/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$regdir/config.yml" <<Y
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $regdir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: trowel-bench
Y
docker-registry serve "$regdir/config.yml" >"$regdir/log" 2>&1 &
regpid=$!
tmpfs_dir=$work/tmpfs
ext4_dir=$work/ext4
cleanup() {
  kill "$regpid" 2>/dev/null || true
  if [ "$ext4" = image ] && mountpoint -q "$ext4_dir" 2>/dev/null; then
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import tools; tools._umount_under(sys.argv[2] + "/state")' \
      "$here" "$ext4_dir" || true
    umount "$ext4_dir" || true
  fi
  if mountpoint -q "$tmpfs_dir" 2>/dev/null; then
    python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import tools; tools._umount_under(sys.argv[2] + "/state")' \
      "$here" "$tmpfs_dir" || true
    umount "$tmpfs_dir" || true
  fi
}
trap cleanup EXIT
reg=127.0.0.1:$port
for _ in $(seq 1 100); do curl -fs "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
echo "==> registry $reg; pushing base images (umoci + skopeo)"
"$here/lib/base-images.sh" "$reg" "$work/cache"
case ",$wls," in *x2,*)
  echo "==> two-platform bases (linux/amd64 + linux/arm64 indexes; the arm64 Debian root is made under QEMU once)"
  "$here/lib/multi-arch-bases.sh" "$reg" "$work/cache";;
esac

# --- physical references -----------------------------------------------------------------------
if [ "$multi" = 0 ]; then
  echo "==> physical references (Debian minbase root on ext4)"
  w6_context=$(cd "$here" && python3 -c 'import sys, workloads; print(workloads.prepare("W6", sys.argv[1])[0])' "$work/cache")
  "$here/lib/references.sh" "$work/cache/debian-bookworm-minbase.tar" "$work/refroot" "$w6_context" > "$out/references.json"
  cat "$out/references.json"
fi

# --- the matrix ----------------------------------------------------------------------------------
bench() { # fs-name fs-dir extra-args...
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir"
  python3 "$here/bench.py" --registry "$reg" --trowel "$trowel" --cache-dir "$work/cache" \
    --fs-dir "$dir" --fs-name "$name" --out "$out" ${tools:+--tools "$tools"} $resume_arg "$@"
}
case ",$fs," in *,both,*) fs=ext4,tmpfs;; esac
if [[ ",$fs," == *,ext4,* ]]; then
  mkdir -p "$ext4_dir"
  if [ "$ext4" = image ]; then
    mountpoint -q "$ext4_dir" && umount "$ext4_dir"
    rm -f "$work/ext4.img"
    truncate -s 32G "$work/ext4.img"
    mkfs.ext4 -q -F "$work/ext4.img"
    # discard: files the tools delete inside the image give their blocks back to the host
    # file system, so the sparse image does not grow to the sum of every build's state.
    mount -o loop,discard "$work/ext4.img" "$ext4_dir"
  fi
  src=$(findmnt -n -o SOURCE --target "$ext4_dir")
  fstype=$(findmnt -n -o FSTYPE --target "$ext4_dir")
  [ "$fstype" = ext4 ] || echo "warning: $ext4_dir is $fstype, not ext4" >&2
  journal=no
  dumpe2fs -h "$src" 2>/dev/null | grep -q has_journal && journal=yes
  [ "$ext4" = image ] && desc="ext4 with a journal, a fresh loop-mounted image" ||
    desc="$fstype ($src, journal: $journal)"
  echo "==> ext4 ($desc): $wls × $modes × $reps"
  bench ext4 "$ext4_dir" --fs-desc "$desc" --workloads "$wls" --modes "$modes" --flags "$flags" --reps "$reps"
  extra=""
  # BIG writes ~2 GiB per copy: context, each tool's root and blobs, the registry.
  free_gb=$(df -P -BG "$work" | awk 'NR==2 {sub("G","",$4); print $4}')
  if [ "$extra_reps" -gt 0 ] && [ "$free_gb" -lt 20 ]; then
    echo "==> skipping BIG and MANY: $free_gb GB free under $work, 20 GB needed" >&2
    extra_reps=0
  fi
  if [ "$extra_reps" -gt 0 ]; then
    extra=,BIG,MANY
    [ "$pextras" = 1 ] && profile_extra=$extra
    echo "==> ext4 extras: BIG, MANY (cold) × $extra_reps"
    bench ext4 "$ext4_dir" --fs-desc "$desc" --workloads BIG,MANY --modes cold --flags "${flags%%,*}" --reps "$extra_reps"
  fi
  if [ "$profile" = 1 ]; then
    # perf (Debian's linux-perf) adds a sampled CPU profile to the traces when it is installed.
    prof=trowel-trace
    perf record -q -o /dev/null -- true >/dev/null 2>&1 && prof=trowel-perf
    echo "==> ext4 profiling pass: $prof, once per workload (cold, warm)"
    bench ext4 "$ext4_dir" --fs-desc "$desc" --tools "$prof" --workloads "$wls${profile_extra:-}" --modes "$modes" \
      --flags "${flags%%,*}" --reps 1
  fi
fi
if [[ ",$fs," == *,tmpfs,* ]]; then
  mkdir -p "$tmpfs_dir"
  mountpoint -q "$tmpfs_dir" || mount -t tmpfs -o size=16g,mode=0755 bench-tmpfs "$tmpfs_dir"
  echo "==> tmpfs: $wls × $modes × $reps"
  bench tmpfs "$tmpfs_dir" --fs-desc "tmpfs (16 GB)" --workloads "$wls" --modes "$modes" --flags "$flags" --reps "$reps"
fi

# --- tables --------------------------------------------------------------------------------------
if [ "$multi" = 1 ]; then
  python3 "$here/report.py" "$out" --multi-platform > "$out/tables.md"
  cat "$out/tables.md"
  if [ "$readme" = 1 ]; then
    mkdir -p "$here/results/multiplatform"
    cp "$out/results.jsonl" "$out/tables.md" "$here/results/multiplatform/"
    python3 "$here/report.py" "$out" --multi-platform --readme "$here/README.md"
    echo "==> bench/README.md (two platforms) updated from $out"
  fi
  echo "==> raw results: $out"
  exit 0
fi
python3 "$here/report.py" "$out" > "$out/tables.md"
cat "$out/tables.md"
if [ "$readme" = 1 ]; then
  mkdir -p "$here/results/latest"
  cp "$out/results.jsonl" "$out/references.json" "$out/tables.md" "$here/results/latest/"
  python3 "$here/report.py" "$out" --readme "$here/README.md"
  echo "==> bench/README.md updated from $out"
fi
echo "==> raw results: $out"
