#!/usr/bin/env bash
# Installs the Debian packages trowel's tests, demo and benchmarks use (idempotent).
set -euo pipefail
pkgs=(docker-registry skopeo umoci crun git busybox-static apache2-utils openssl curl file xz-utils zstd tmux python3 python3-jwt python3-cryptography patchelf ca-certificates binutils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts nothing under systemd-less machines, but make sure no stray
# registry holds port 5000 from a package post-install script.
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
