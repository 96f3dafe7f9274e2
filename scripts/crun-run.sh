#!/usr/bin/env bash
# Runs an OCI bundle with crun, as the tests and the demo do.
#
#   scripts/crun-run.sh BUNDLE [ID]        run in the foreground, delete when it exits
#   scripts/crun-run.sh -d BUNDLE ID       start detached (like a pod whose process is
#                                          `sleep infinity`); `crun exec [-t] ID …` enters it
#                                          and `crun delete -f ID` ends it
#
# crun refuses to start on a "hybrid" cgroup host (cgroup v1 controllers plus a cgroup2 mount
# at /sys/fs/cgroup/unified that holds a controller), which is what these machines have. The
# tests do not need cgroups, so crun runs with its cgroup manager disabled in a private mount
# namespace where the cgroup2 mount is hidden; the host is left untouched.
set -euo pipefail
detach=
if [ "${1:-}" = -d ]; then
  detach=1
  shift
fi
bundle=${1:?usage: crun-run.sh [-d] BUNDLE [ID]}
id=${2:-trowel-$$}
if [ -n "$detach" ]; then
  exec unshare -m sh -c '
    if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
    exec crun --cgroup-manager=disabled run --detach --bundle "$1" "$2" </dev/null >/dev/null 2>&1
  ' crun-run "$bundle" "$id"
fi
exec unshare -m sh -c '
  if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
  crun --cgroup-manager=disabled run --bundle "$1" "$2"
  rc=$?
  crun delete -f "$2" >/dev/null 2>&1 || true
  exit $rc
' crun-run "$bundle" "$id"
