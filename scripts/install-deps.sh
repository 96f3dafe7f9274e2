#!/usr/bin/env bash
# Installs the Debian packages trowel's tests, demo and benchmarks use (idempotent).
set -euo pipefail
pkgs=(nodejs docker-registry skopeo umoci crun busybox-static apache2-utils openssl curl file xz-utils zstd tmux python3 python3-venv python3-jwt python3-cryptography python3-yaml patchelf ca-certificates binutils debootstrap openssh-server openssh-client git qemu-user-static binfmt-support strace uidmap passwd util-linux libcap2-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
# The arm64 architecture, so the test base image can fetch Debian's busybox-static:arm64
# (scripts/make-base-image.sh); its package lists come with the next update.
update=
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding the arm64 architecture" >&2
  $sudo dpkg --add-architecture arm64
  update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ -n "$update" ]; then
  $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm for Azurite (tests/context_azure.rs): Debian's package, unless the nodejs installed
# already brings its own npm (NodeSource's does, and conflicts with Debian's).
if ! command -v npm >/dev/null; then
  [ ${#missing[@]} -gt 0 ] || [ -n "$update" ] || $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# The Debian package starts nothing under systemd-less machines, but make sure no stray
# registry holds port 5000 from a package post-install script.
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
