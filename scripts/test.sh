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
envdir=$(mktemp -d /tmp/trowel-testenv.XXXXXX)
cleanup() { scripts/testenv.sh down "$envdir" || true; rm -rf "$envdir"; }
trap cleanup EXIT
scripts/testenv.sh up "$envdir" $$ > /dev/null
set -a
# shellcheck disable=SC1091
. "$envdir/env"
set +a
echo "test registries: plain $TROWEL_TEST_REGISTRY, auth $TROWEL_TEST_AUTH_REGISTRY, tls $TROWEL_TEST_TLS_REGISTRY"
cargo build --quiet --all-targets
cargo test --quiet "$@" -- --test-threads=2
