#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, starts the local registries and the
# base image (scripts/testenv.sh), then runs every test against them.
#
#   scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "trowel's tests run RUN steps in namespaces, mount and chown files: run them as root" >&2
  exit 1
fi
# Foreign-platform RUN steps go through the kernel's binfmt_misc and QEMU (tests of emulation
# and of multi-platform builds); those tests fail with trowel's own message when this could not.
scripts/enable-emulation.sh || echo "warning: QEMU emulation is not available (see above)" >&2
envdir=$(mktemp -d /tmp/trowel-testenv.XXXXXX)
# The Debian bases some tests build on are made once per machine (minutes on a fresh one): that
# starts now, beside the compile; a test that needs one before it is ready waits for it (each
# flavour has its own lock), and one that finds it failed makes it again and reports why.
setsid scripts/make-debian-image.sh --prepare minbase python go rust node git >"$envdir/debian-images.log" 2>&1 &
prepare=$!
# The emulators and clients the remote-context tests run (S3, Azure, GCS; from PyPI and npm) are
# installed beside the compile too, instead of inside the first test that needs each: a minute
# of downloads off the suite's time. Each script locks, so a test that asks first just waits.
target=${CARGO_TARGET_DIR:-target}
setsid bash -c "scripts/s3-emulator.sh; scripts/azure-test-tools.sh; scripts/gcs-test-tools.sh '$target/gcs-test-tools'" \
  >"$envdir/test-tools.log" 2>&1 &
tools=$!
# Scratch space in memory for what the tests unpack only to look at, and for the corpus's builds
# of whole Debian images (tests/common/mod.rs, `scratch_dir`): on a virtual disk, deleting the
# tens of thousands of files of one such tree took longer than building it (95 s against 33 s
# for mount-cache-npm's root, 3 minutes for 50,000 files with rm -rf). What the tests are about
# (trowel's own roots and caches elsewhere, full disks, ext4) stays on the disk.
# (Beside envdir, which is root's alone: the rootless tests' user works in it too.)
scratch=$(mktemp -d /tmp/trowel-scratch.XXXXXX)
if mount -t tmpfs -o size=8g,mode=1777 trowel-test-scratch "$scratch"; then
  export TROWEL_TEST_SCRATCH=$scratch
else
  echo "warning: no tmpfs for the tests' scratch space: the slower disk is used" >&2
fi
cleanup() {
  kill -- -"$prepare" 2>/dev/null && wait "$prepare" 2>/dev/null
  kill -- -"$tools" 2>/dev/null && wait "$tools" 2>/dev/null
  scripts/testenv.sh down "$envdir" || true
  if mountpoint -q "$scratch"; then umount "$scratch" || umount -l "$scratch"; fi
  rm -rf --one-file-system "$envdir" "$scratch"
}
trap cleanup EXIT
scripts/testenv.sh up "$envdir" $$ > /dev/null
set -a
# shellcheck disable=SC1091
. "$envdir/env"
set +a
# The suite's bases are busybox, under the size below which a root is unpacked rather than
# mounted from the unpacked-layer store (`--unpacked-store-min-size`): the store is what most
# tests that give a cache dir are about. Tests of the size rule itself unset it.
export TROWEL_UNPACKED_STORE_MIN_SIZE=0
echo "test registries: plain $TROWEL_TEST_REGISTRY, auth $TROWEL_TEST_AUTH_REGISTRY, tls $TROWEL_TEST_TLS_REGISTRY"
cargo build --quiet --all-targets
cargo test --quiet "$@" -- --test-threads=2
