#!/usr/bin/env python3
"""Where rootless isolation's fixed cost goes: each part of entering the user namespace timed
alone (issue 19), by userns-parts.c run as the ordinary user the bench uses (tools.ROOTLESS_USER,
with its subordinate range), all parts interleaved in every repetition. Run as root:

    bench/lib/userns-parts.py TROWEL_BINARY [REPS] [RAW_OUT]

Prints the load, then per part the median, min and max in milliseconds; RAW_OUT (optional) gets
every raw microsecond figure, one `part value` line each, as the C program printed them.
"""

import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tools  # noqa: E402


def own_range(path, name, uid):
    for line in open(path):
        f = line.strip().split(":")
        if len(f) == 3 and f[0] in (name, str(uid)):
            return "%s %s" % (f[1], f[2])
    sys.exit("no range for %s in %s" % (name, path))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    raw_out = sys.argv[3] if len(sys.argv) > 3 else None
    uid, gid = tools.rootless_user()
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="userns-parts-") as top:
        os.chmod(top, 0o755)
        exe = os.path.join(top, "userns-parts")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(here, "userns-parts.c")], check=True)
        env = {"PATH": "/usr/bin:/bin", "UID_RANGE": own_range("/etc/subuid", tools.ROOTLESS_USER, uid),
               "GID_RANGE": own_range("/etc/subgid", tools.ROOTLESS_USER, uid)}
        load = os.getloadavg()
        out = subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(gid), "--init-groups", "--", exe,
                              str(reps), binary], env=env, capture_output=True, text=True, check=True).stdout
    load_after = os.getloadavg()
    parts = {}
    for line in out.splitlines():
        name, value = line.split()
        parts.setdefault(name, []).append(int(value) / 1000)
    print("load (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f" % (load + load_after))
    for name, v in parts.items():
        print("%-12s median %6.2f ms  (min %6.2f, max %6.2f; n=%d)" % (
            name, statistics.median(v), min(v), max(v), len(v)))
    if raw_out:
        with open(raw_out, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()
