#!/usr/bin/env python3
"""Two trowel binaries (a base and a change) alternating on the same cells: issue 17's
"the snapshotter reads each file once" before/after.

Cells (chroot isolation, kaniko's flags where a cache repository is used, all state on STATE_DIR):
  store-hit  W4 built twice with the same state and no layer cache (only --cache-dir, where the
             unpacked-layer store lives); the second build is timed: its root is mounted from the
             store, its three RUNs run (lib/store-hit.py's case, between binaries not isolations)
  W2, W3     cold: fresh state, fresh cache repository and destination, `--cache=true --cache-repo`
             (bench/run.sh's cold mode with kaniko's flags); any workload so named (W5, W6, ...)
  W5:warm    the same workload built twice with the same state and cache repository: the second
             build is timed (an unchanged rebuild on the same machine)
  W5:fresh   built once, then again with fresh state (a new work dir and cache dir) and the same
             cache repository: the second build is timed (an unchanged rebuild in a fresh CI pod)

Per cell and repetition both binaries run, the order flipping every repetition; before each
timed build `sync` (not timed). The wall time is the build command's; the `Mounted ... in N ms`
line of a store hit, user+sys CPU seconds and the peak RSS (`/usr/bin/time -v`) are kept. One JSON line per build goes
to OUT (the raw data); medians and the median of per-repetition new/old ratios are printed.
Run as root, with the bench registry holding busybox:1.35 and debian:bookworm-minbase:

    bench/lib/ab-binaries.py REGISTRY BENCH_CACHE_DIR STATE_DIR OLD_BIN NEW_BIN OUT.jsonl [REPS] [CELLS]
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tools  # noqa: E402
import workloads  # noqa: E402

ROOT_LINE = re.compile(r"(Mounted|Unpacked) .* in (\d+) ms")
RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
CPU = re.compile(r"(User|System) time \(seconds\): ([\d.]+)")


def build(binary, ctx, dockerfile, reg, st, repo, extra):
    argv = ["/usr/bin/time", "-v", binary, "build", "--context", ctx, "--dockerfile", dockerfile,
            "--destination", "%s/%s:latest" % (reg, repo), "--build-arg", "BASE_REGISTRY=" + reg,
            "--isolation", "chroot", "--work-dir", os.path.join(st, "work"),
            "--cache-dir", os.path.join(st, "cache-dir"), "--log-format", "text"] + extra
    os.sync()
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(argv), p.stderr[-2000:]))
    root = ROOT_LINE.search(p.stderr + p.stdout)
    rss = RSS.search(p.stderr)
    cpu = sum(float(m.group(2)) for m in CPU.finditer(p.stderr))
    return wall, (int(root.group(2)) if root else None), (int(rss.group(1)) if rss else None), cpu


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    reg, cache, fsdir, old, new, out = sys.argv[1:7]
    reps = int(sys.argv[7]) if len(sys.argv) > 7 else 6
    cells = sys.argv[8].split(",") if len(sys.argv) > 8 else ["store-hit", "W2", "W3"]
    bins = {"old": old, "new": new}
    walls = {(c, b): [] for c in cells for b in bins}
    cpus = {(c, b): [] for c in cells for b in bins}
    with open(out, "a") as log:
        for rep in range(reps):
            for cell in cells:
                wl, _, mode = ("W4" if cell == "store-hit" else cell).partition(":")
                ctx, dockerfile = workloads.prepare(wl, cache)
                for which in (["old", "new"] if rep % 2 == 0 else ["new", "old"]):
                    st = os.path.join(fsdir, "ab-%s-%s-%d" % (cell.replace(":", "-"), which, rep))
                    tools.wipe(st)
                    for d in ("work", "cache-dir"):
                        os.makedirs(os.path.join(st, d))
                    tag = "ab-%s-%s-%d-%d" % (cell.lower().replace(":", "-"), which, rep, int(time.time()))
                    load = os.getloadavg()[0]
                    if cell == "store-hit":
                        build(bins[which], ctx, dockerfile, reg, st, tag + "-1", [])
                        wall, root, rss, cpu = build(bins[which], ctx, dockerfile, reg, st, tag + "-2", [])
                    else:
                        cache_flags = ["--cache=true", "--cache-repo", "%s/%s-cache" % (reg, tag)]
                        if mode:
                            build(bins[which], ctx, dockerfile, reg, st, tag, cache_flags)
                        if mode == "fresh":
                            tools.wipe(st)
                            os.makedirs(os.path.join(st, "work"))
                        wall, root, rss, cpu = build(bins[which], ctx, dockerfile, reg, st, tag, cache_flags)
                    walls[(cell, which)].append(wall)
                    cpus[(cell, which)].append(cpu)
                    rec = {"cell": cell, "binary": which, "rep": rep + 1, "wall_s": round(wall, 4),
                           "user_sys_s": round(cpu, 3), "root_ms": root, "peak_rss_kb": rss, "load1_before": load,
                           "load1_after": os.getloadavg()[0]}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    print(json.dumps(rec), flush=True)
                    tools.wipe(st)
    for cell in cells:
        for what, d in (("wall", walls), ("user+sys", cpus)):
            o, n = d[(cell, "old")], d[(cell, "new")]
            print("%-9s %-8s old median %.3f s, new median %.3f s (n=%d); new/old per repetition: median %.2f" % (
                cell, what, statistics.median(o), statistics.median(n), len(o),
                statistics.median(b / a for a, b in zip(o, n))))


if __name__ == "__main__":
    main()
