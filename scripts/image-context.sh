#!/usr/bin/env bash
# Assembles the build context for trowel's own images (the Dockerfile at the repo root).
#
#   scripts/image-context.sh [--no-git] [BINARY] [OUT]
#                                    default: target/release/trowel → target/image-context
#
# The binary is made self-contained under /trowel: its dynamic loader and libraries are copied
# into /trowel/lib and patchelf points the binary at them, so it keeps working after container
# isolation has replaced the rest of / with a base image. CA certificates go to /trowel/ssl; the
# debug variant gets a static busybox with its applets in /trowel/busybox.
#
# git (for `ADD <git repository>` in container isolation) is bundled the same way under
# /trowel/git, since the git on PATH there would be the base image's: see bundle_git below.
# `--no-git` leaves it out (27 MB less; such an image refuses `ADD <git repository>` in
# container isolation, naming what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
with_git=1
if [ "${1:-}" = --no-git ]; then with_git=0; shift; fi
bin=${1:-target/release/trowel}
out=${2:-target/image-context}
for tool in patchelf strip busybox; do
  command -v "$tool" >/dev/null || { echo "image-context.sh needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
# A loader reads /etc/ld.so.preload — the base image's, in a pod — whatever RPATH says, so a
# hostile image could put its library into trowel's own processes: each bundled loader reads
# /trowel/no-preload instead (same length, so the file is only patched in place).
no_preload() {
  LC_ALL=C sed -i 's|/etc/ld\.so\.preload|/trowel/no-preload|g' "$1"
  if LC_ALL=C grep -qa /etc/ld.so.preload "$1" || ! LC_ALL=C grep -qa /trowel/no-preload "$1"; then
    echo "image-context.sh: could not point the loader $1 away from /etc/ld.so.preload" >&2; exit 1
  fi
}
rm -rf "$out"
mkdir -p "$out/trowel/lib" "$out/trowel/ssl/certs" "$out/trowel/.docker" "$out/busybox"
install -m 0755 "$bin" "$out/trowel/trowel"
strip --strip-debug "$out/trowel/trowel"
interp=$(patchelf --print-interpreter "$bin")
cp -L "$interp" "$out/trowel/lib/"
no_preload "$out/trowel/lib/$(basename "$interp")"
ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do cp -L "$lib" "$out/trowel/lib/"; done
patchelf --set-interpreter "/trowel/lib/$(basename "$interp")" --set-rpath /trowel/lib "$out/trowel/trowel"
cp /etc/ssl/certs/ca-certificates.crt "$out/trowel/ssl/certs/ca-certificates.crt"
# kaniko's image keeps its CAs in /kaniko/ssl/certs (SSL_CERT_DIR), and jobs written for it add
# theirs there: GitLab's recipe appends to /kaniko/ssl/certs/ca-certificates.crt (here a link to
# trowel's bundle, so SSL_CERT_FILE has it too), runners mount extra bundles into the directory.
mkdir -p "$out/kaniko/ssl/certs"
ln -s /trowel/ssl/certs/ca-certificates.crt "$out/kaniko/ssl/certs/ca-certificates.crt"
# No config.json in /trowel/.docker (DOCKER_CONFIG): a mounted Secret puts one there, and
# without one trowel reads the next candidate, /kaniko/.docker/config.json, which jobs written
# for kaniko write (an empty file here would hide it).

# git and what a clone runs, found this way: `git clone`/`fetch` over http(s) runs
# git-remote-http(s) from git's exec path (`git --exec-path`), and index-pack, fetch-pack and
# submodule--helper as `git` itself from that directory; `git submodule` is the shell script
# git-submodule, which sources git-sh-setup and git-sh-i18n (with its helper
# git-sh-i18n--envsubst) and runs sed and basename (found with GIT_TRACE=1 and by reading it,
# then checked by cloning with submodules in a root holding nothing but /trowel); an ssh remote
# runs OpenSSH's `ssh`, and trowel reads host keys with ssh-keygen and ssh-keyscan (git/ssh.rs). Every ELF file's libraries are what `ldd` lists
# (the whole dependency tree), copied to /trowel/git/lib, and every file, libraries included
# (but libc and the loader, which need only each other), gets /trowel/git/lib as its RPATH (not RUNPATH: RPATH also serves the libraries' own dependencies)
# and the bundled loader, so nothing is looked up in the image's /lib, /usr/lib or
# /etc/ld.so.cache. glibc's NSS (ssh looks the user up) is built into libc.so.6 since 2.34.
bundle_git() {
  local gd="$out/trowel/git" exec_path
  command -v git >/dev/null || { echo "image-context.sh: git is missing (install git, or pass --no-git)" >&2; exit 1; }
  exec_path=$(git --exec-path)
  mkdir -p "$gd/bin" "$gd/libexec/git-core" "$gd/lib"
  need() { [ -e "$1" ] || { echo "image-context.sh: $1 is missing (it is part of the bundled git; install git and openssh-client)" >&2; exit 1; }; }
  local elf=()
  for f in git git-remote-http git-sh-i18n--envsubst; do
    need "$exec_path/$f"
    cp -L "$exec_path/$f" "$gd/libexec/git-core/$f"
    elf+=("$gd/libexec/git-core/$f")
  done
  # Protocols are told apart by the name git runs the helper as.
  for f in git-remote-https git-remote-ftp git-remote-ftps; do ln -s git-remote-http "$gd/libexec/git-core/$f"; done
  for f in git-submodule git-sh-setup git-sh-i18n; do
    need "$exec_path/$f"
    cp -L "$exec_path/$f" "$gd/libexec/git-core/$f"
  done
  # git-submodule runs under the bundle's shell (a static busybox), not the image's /bin/sh,
  # with the bundle's sed and basename: trowel gives git a PATH of /trowel/git/bin only.
  sed -i '1s|^#!/bin/sh$|#!/trowel/git/bin/sh|' "$gd/libexec/git-core/git-submodule"
  head -1 "$gd/libexec/git-core/git-submodule" | grep -qx '#!/trowel/git/bin/sh' \
    || { echo "image-context.sh: $exec_path/git-submodule does not start with #!/bin/sh" >&2; exit 1; }
  # Static: it runs whatever / holds.
  ! ldd "$(command -v busybox)" >/dev/null 2>&1 || { echo "image-context.sh: busybox must be statically linked" >&2; exit 1; }
  install -m 0755 "$(command -v busybox)" "$gd/bin/busybox"
  for applet in sh sed basename; do ln -s busybox "$gd/bin/$applet"; done
  for f in ssh ssh-keygen ssh-keyscan; do
    local p
    p=$(command -v "$f") || { echo "image-context.sh: $f is missing (install openssh-client)" >&2; exit 1; }
    cp -L "$p" "$gd/bin/$f"
    elf+=("$gd/bin/$f")
  done
  local libs
  libs=$(for e in "${elf[@]}"; do
    ldd "$e" | awk '/=> \// {print $3} /=> not found/ {print "MISSING:" $1}'
  done | sort -u)
  if grep -q '^MISSING:' <<<"$libs"; then
    echo "image-context.sh: libraries of the bundled git are missing: $(grep '^MISSING:' <<<"$libs" | tr '\n' ' ')" >&2
    exit 1
  fi
  for lib in $libs; do cp -L "$lib" "$gd/lib/"; done
  local gi
  gi=$(patchelf --print-interpreter "$exec_path/git")
  cp -L "$gi" "$gd/lib/"
  no_preload "$gd/lib/$(basename "$gi")"
  for e in "${elf[@]}"; do
    patchelf --set-interpreter "/trowel/git/lib/$(basename "$gi")" --force-rpath --set-rpath /trowel/git/lib "$e"
  done
  for lib in "$gd"/lib/*; do
    # libc.so.6 and the loader need nothing but each other.
    case "$(basename "$lib")" in "$(basename "$gi")" | libc.so.6) continue ;; esac
    patchelf --force-rpath --set-rpath /trowel/git/lib "$lib"
  done
}
if [ "$with_git" = 1 ]; then bundle_git; fi
install -m 0755 "$(command -v busybox)" "$out/busybox/busybox"
for applet in $(busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$out/busybox/$applet"
done
echo "$out"
