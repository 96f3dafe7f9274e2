#!/usr/bin/env python3
"""A second build on a machine that already built on the same base, chroot vs rootless.

The bench's modes never show it: cold starts with an empty unpacked-layer store and warm hits the
layer cache in every step. Here W4 is built twice with the same state and no layer cache (only
--cache-dir, which the store lives in), as another project (or a changed line early in the
Dockerfile) would be: the second build's RUNs all run, on a base chroot isolation mounts from its
store while rootless isolation (which does not use the store) unpacks it again. Only the second
build is timed; the isolations alternate, the order flipping every repetition; trowel-rl runs as
bench/tools.py runs it. Run as root, with the bench's registry holding its bases
(lib/base-images.sh) and its contexts made (bench.py, or a --rootless run, did it):

    bench/lib/store-hit.py REGISTRY BENCH_CACHE_DIR STATE_DIR TROWEL_BINARY [REPS]
"""

import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tools  # noqa: E402

ROOT_LINE = re.compile(r"(Mounted|Unpacked) .* in (\d+) ms")


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    reg, cache, fsdir, binary = sys.argv[1:5]
    reps = int(sys.argv[5]) if len(sys.argv) > 5 else 6
    ctx, dockerfile = os.path.join(cache, "contexts", "W4"), os.path.join(cache, "dockerfiles", "W4", "Dockerfile")
    uid, gid = tools.rootless_user()
    walls, roots = {"chroot": [], "rootless": []}, {"chroot": [], "rootless": []}
    print("load at start: %.2f" % os.getloadavg()[0])
    for rep in range(reps):
        for iso in (["chroot", "rootless"] if rep % 2 == 0 else ["rootless", "chroot"]):
            st = os.path.join(fsdir, "store-hit-%s-%d" % (iso, rep))
            tools.wipe(st)
            for d in ("work", "cache-dir", "home", "tmp"):
                os.makedirs(os.path.join(st, d))
            pre = []
            if iso == "rootless":
                subprocess.run(["chown", "-R", "%d:%d" % (uid, gid), st], check=True)
                pre = ["/usr/bin/setpriv", "--reuid", str(uid), "--regid", str(gid), "--init-groups", "--",
                       "/usr/bin/env", "-i", "HOME=%s/home" % st, "USER=" + tools.ROOTLESS_USER,
                       "PATH=" + tools.ROOTLESS_PATH, "TMPDIR=%s/tmp" % st]
            for i in (1, 2):
                argv = pre + [binary, "build", "--context", ctx, "--dockerfile", dockerfile, "--destination",
                              "%s/store-hit/%s-%d-%d:latest" % (reg, iso, rep, i), "--build-arg", "BASE_REGISTRY=" + reg,
                              "--isolation", iso, "--work-dir", os.path.join(st, "work"),
                              "--cache-dir", os.path.join(st, "cache-dir"), "--log-format", "text"]
                os.sync()
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True)
                wall = time.monotonic() - t0
                if p.returncode != 0:
                    sys.exit("%s build %d failed: %s" % (iso, i, p.stderr[-1500:]))
            m = ROOT_LINE.search(p.stderr + p.stdout)
            walls[iso].append(wall)
            roots[iso].append(int(m.group(2)))
            print("rep %d %-8s second build %.3f s; its root: %s" % (rep + 1, iso, wall, m.group(0)[:110]), flush=True)
            tools.wipe(st)
    for iso in walls:
        print("%-8s second build: median %.3f s (n=%d); its root made in a median %d ms" % (
            iso, statistics.median(walls[iso]), len(walls[iso]), statistics.median(roots[iso])))
    pairs = list(zip(walls["rootless"], walls["chroot"]))
    print("rootless / chroot per repetition: median %.2f; rootless - chroot: median %+.3f s; load at end: %.2f" % (
        statistics.median(a / b for a, b in pairs), statistics.median(a - b for a, b in pairs), os.getloadavg()[0]))


if __name__ == "__main__":
    main()
