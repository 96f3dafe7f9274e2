#!/usr/bin/env python3
"""Warm rebuilds (or cold builds), chroot vs rootless, many rounds: issue 19's cells measured
finely enough.

A warm build of W1, W2 or W4 takes 30-50 ms, and the bench's three repetitions of it range from
0.65 to 2.16 times the other isolation's (results/issue19-defer): they cannot say whether a
constant of a few milliseconds is within 10 %. Here each workload is built cold once per
isolation (kaniko's usual flags: `--cache=true --cache-repo`, and a `--cache-dir`), then rebuilt
unchanged ROUNDS times, chroot and rootless alternating and the order flipping every round, both
started alike (bench/tools.py, AsUser: ids set in this script's forked child, root's own for
chroot). Only the rebuilds are timed; each must hit every step. Printed per workload: the
medians, the median of the per-round ratios rootless / chroot and of the differences.

Run as root while the bench's registry serves its bases (`lib/base-images.sh`) and with its
contexts made (bench.py, or a `bench/run.sh --rootless` run, makes them):

    bench/lib/rootless-warm.py REGISTRY BENCH_CACHE_DIR STATE_DIR TROWEL_BINARY [ROUNDS] [W1,W2,W4] [--cold]

--cold times cold builds instead, the same way: every round a fresh state (work dir, cache dir)
and a cache repository never used, so every step misses and every base is pulled.
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tools  # noqa: E402


def main():
    cold = "--cold" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--cold"]
    if len(args) < 4:
        sys.exit(__doc__)
    reg, cache, fsdir, binary = args[:4]
    rounds = int(args[4]) if len(args) > 4 else 30
    workloads = (args[5] if len(args) > 5 else "W1,W2,W4").split(",")
    uid, gid = tools.rootless_user()
    user = tools.AsUser(tools.ROOTLESS_USER, uid, gid)
    stamp = time.strftime("%H%M%S")
    print("load at start: %.2f %.2f %.2f" % os.getloadavg())
    for wl in workloads:
        ctx, dockerfile = os.path.join(cache, "contexts", wl), os.path.join(cache, "dockerfiles", wl, "Dockerfile")

        def prepare(iso, tag):
            """A fresh state for `iso` and the build's argv and launch, its cache repo named by `tag`."""
            st = os.path.join(fsdir, "rootless-warm-%s-%s" % (wl, iso))
            tools.wipe(st)
            for d in ("work", "cache-dir", "home", "tmp"):
                os.makedirs(os.path.join(st, d))
            if iso == "rootless":
                subprocess.run(["chown", "-R", "%d:%d" % (uid, gid), st], check=True)
                kwargs = {"env": {"HOME": os.path.join(st, "home"), "USER": tools.ROOTLESS_USER,
                                  "LOGNAME": tools.ROOTLESS_USER, "PATH": tools.ROOTLESS_PATH,
                                  "TMPDIR": os.path.join(st, "tmp")},
                          "user": user.uid, "group": user.gid, "extra_groups": user.groups}
            else:
                kwargs = {"env": dict(os.environ), "user": 0, "group": 0, "extra_groups": []}
            repo = "%s/rootless-warm/%s-%s-%s" % (reg, wl.lower(), iso, tag)
            argv = [binary, "build", "--context", ctx, "--dockerfile", dockerfile, "--destination", repo + ":latest",
                    "--build-arg", "BASE_REGISTRY=" + reg, "--isolation", iso,
                    "--work-dir", os.path.join(st, "work"), "--log-format", "text",
                    "--cache=true", "--cache-repo", repo + "-cache", "--cache-dir", os.path.join(st, "cache-dir")]
            return argv, kwargs

        runs = {}
        if not cold:
            for iso in ("chroot", "rootless"):
                runs[iso] = prepare(iso, stamp)
                argv, kwargs = runs[iso]
                p = subprocess.run(argv, capture_output=True, text=True, **kwargs)
                if p.returncode != 0:
                    sys.exit("%s %s cold build failed: %s" % (wl, iso, p.stderr[-800:]))
        times = {"chroot": [], "rootless": []}
        for r in range(rounds):
            for iso in (["chroot", "rootless"] if r % 2 == 0 else ["rootless", "chroot"]):
                argv, kwargs = prepare(iso, "%s-%d" % (stamp, r)) if cold else runs[iso]
                if cold:
                    os.sync()
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True, **kwargs)
                times[iso].append(time.monotonic() - t0)
                if p.returncode != 0 or (not cold and "Cache miss" in p.stderr):
                    sys.exit("%s %s build %d failed or missed: %s" % (wl, iso, r, p.stderr[-800:]))
        c, rl = times["chroot"], times["rootless"]
        ratio = statistics.median(b / a for a, b in zip(c, rl))
        diff = statistics.median(b - a for a, b in zip(c, rl)) * 1000
        print("%s %s, %d rounds: chroot median %.1f ms, rootless median %.1f ms; per round rootless/chroot "
              "median %.3f, rootless - chroot median %+.1f ms; <= 1.10x: %s" % (
                  wl, "cold" if cold else "warm", rounds, statistics.median(c) * 1000, statistics.median(rl) * 1000, ratio, diff,
                  "yes" if ratio <= 1.10 else "no"))
        for iso in ("chroot", "rootless"):
            tools.wipe(os.path.join(fsdir, "rootless-warm-%s-%s" % (wl, iso)))
    print("load at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
