#!/usr/bin/env bash
# Runs an OCI bundle with crun, as the tests and the demo do.
#
#   scripts/crun-run.sh BUNDLE [ID]
#
# crun refuses to start on a "hybrid" cgroup host (cgroup v1 controllers plus a cgroup2 mount
# at /sys/fs/cgroup/unified that holds a controller), which is what these machines have. The
# tests do not need cgroups, so crun runs with its cgroup manager disabled in a private mount
# namespace where the cgroup2 mount is hidden; the host is left untouched.
set -euo pipefail
bundle=${1:?usage: crun-run.sh BUNDLE [ID]}
id=${2:-trowel-$$}
exec unshare -m sh -c '
  if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
  crun --cgroup-manager=disabled run --bundle "$1" "$2"
  rc=$?
  crun delete -f "$2" >/dev/null 2>&1 || true
  exit $rc
' crun-run "$bundle" "$id"
