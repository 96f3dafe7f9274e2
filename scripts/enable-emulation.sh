#!/usr/bin/env bash
# Makes foreign-architecture RUN steps work on this machine: mounts binfmt_misc when it is not
# mounted and enables the QEMU handlers Debian's qemu-user-static registers (with the F flag, so
# they keep working inside a build root that has no QEMU). The tests of emulation and the
# multi-platform builds need it; on a machine where it cannot be done (an unprivileged
# container) it says why and exits non-zero, and those tests fail with trowel's own message.
#
#   scripts/enable-emulation.sh            (as root; scripts/install-deps.sh installs the packages)
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/status" ]; then
  mount -t binfmt_misc binfmt_misc "$dir" || {
    echo "cannot mount binfmt_misc on $dir (an unprivileged container?): foreign-platform RUN tests will fail" >&2
    exit 1
  }
fi
if [ "$(cat "$dir/status")" != enabled ]; then
  echo 1 > "$dir/status"
fi
update-binfmts --enable >/dev/null 2>&1 || true
if [ ! -e "$dir/qemu-aarch64" ] || ! grep -qx enabled "$dir/qemu-aarch64"; then
  # update-binfmts only enables what binfmt-support knows: register qemu-user-static's formats.
  update-binfmts --import >/dev/null 2>&1 || true
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
if ! grep -qx enabled "$dir/qemu-aarch64" 2>/dev/null; then
  echo "no enabled qemu-aarch64 handler in $dir: install qemu-user-static and binfmt-support" >&2
  exit 1
fi
if ! grep -q '^flags: .*F' "$dir/qemu-aarch64"; then
  echo "the qemu-aarch64 handler lacks the F flag (qemu-user-binfmt?): install qemu-user-static instead" >&2
  exit 1
fi
