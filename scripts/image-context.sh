#!/usr/bin/env bash
# Assembles the build context for trowel's own images (the Dockerfile at the repo root).
#
#   scripts/image-context.sh [BINARY] [OUT]     default: target/release/trowel → target/image-context
#
# The binary is made self-contained under /trowel: its dynamic loader and libraries are copied
# into /trowel/lib and patchelf points the binary at them, so it keeps working after container
# isolation has replaced the rest of / with a base image. CA certificates go to /trowel/ssl; the
# debug variant gets a static busybox with its applets in /trowel/busybox.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/trowel}
out=${2:-target/image-context}
for tool in patchelf strip busybox; do
  command -v "$tool" >/dev/null || { echo "image-context.sh needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/trowel/lib" "$out/trowel/ssl/certs" "$out/trowel/.docker" "$out/busybox"
install -m 0755 "$bin" "$out/trowel/trowel"
strip --strip-debug "$out/trowel/trowel"
interp=$(patchelf --print-interpreter "$bin")
cp -L "$interp" "$out/trowel/lib/"
ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do cp -L "$lib" "$out/trowel/lib/"; done
patchelf --set-interpreter "/trowel/lib/$(basename "$interp")" --set-rpath /trowel/lib "$out/trowel/trowel"
cp /etc/ssl/certs/ca-certificates.crt "$out/trowel/ssl/certs/ca-certificates.crt"
echo '{}' > "$out/trowel/.docker/config.json"
install -m 0755 "$(command -v busybox)" "$out/busybox/busybox"
for applet in $(busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$out/busybox/$applet"
done
echo "$out"
