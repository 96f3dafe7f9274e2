#!/usr/bin/env python3
"""How much of a cold build is the registry's work: the requests each tool sends and the CPU the
registry spends answering them (issue 17, "A cold W1 is the registry's CPU").

    bench/lib/registry-share.py --registry HOST:PORT --registry-pid PID --access-log FILE
                                --trowel BIN --kaniko EXECUTOR --cache-dir DIR --state DIR
                                [--workload W1] [--rounds 3] [--reps 3] --out results.jsonl

The registry is one the caller runs (Debian's `docker-registry` with the bench's base images,
its access log at `info` level written to FILE). Each round runs bench/bench.py once per tool
(kaniko first, then trowel, then the order swaps), `--reps` cold builds with kaniko's usual
flags, state under --state, a file-system label no earlier round used (so every build gets a
fresh destination and cache repository, as a cold build must). Around each bench.py run it
reads the registry's CPU time (`utime + stime` of /proc/PID/stat) and counts the access log's
completed requests; a run's figures divided by `--reps` are one build's (they include the one
`tags/list` request per build bench.py sends after it). Wall times are bench.py's own. One JSON
line per bench.py run goes to --out; the medians per tool are printed at the end.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def registry_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def requests(log):
    with open(log, "rb") as f:
        return sum(1 for line in f if b"response completed" in line)


def run(args, tool, label):
    out = os.path.join(args.state, "out-" + label)
    shutil.rmtree(out, ignore_errors=True)
    cpu0, req0 = registry_cpu(args.registry_pid), requests(args.access_log)
    p = subprocess.run(
        ["python3", os.path.join(os.path.dirname(HERE), "bench.py"), "--registry", args.registry,
         "--trowel", args.trowel, "--kaniko", args.kaniko, "--cache-dir", args.cache_dir,
         "--fs-dir", os.path.join(args.state, "fs"), "--fs-name", label, "--out", out,
         "--workloads", args.workload, "--modes", "cold", "--flags", "kaniko", "--reps", str(args.reps),
         "--tools", tool, "--no-verify"], capture_output=True, text=True, check=True)
    cpu1, req1 = registry_cpu(args.registry_pid), requests(args.access_log)
    walls = []
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "run":
                walls.append(r["wall_s"])
    if len(walls) != args.reps:
        raise SystemExit("bench.py ran %d builds, not %d:\n%s" % (len(walls), args.reps, p.stdout + p.stderr))
    return {"tool": tool, "label": label, "walls": walls, "registry_cpu_s": (cpu1 - cpu0) / args.reps,
            "requests": (req1 - req0) / args.reps, "load": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--registry-pid", type=int, required=True)
    ap.add_argument("--access-log", required=True)
    ap.add_argument("--trowel", required=True)
    ap.add_argument("--kaniko", required=True)
    ap.add_argument("--cache-dir", required=True, help="bench.py's generated contexts")
    ap.add_argument("--state", required=True, help="where the tools keep their state (the fs under test)")
    ap.add_argument("--workload", default="W1")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.state, exist_ok=True)
    stamp = time.strftime("%H%M%S")
    rows = []
    with open(args.out, "a") as out:
        for i in range(args.rounds):
            order = ("kaniko", "trowel") if i % 2 == 0 else ("trowel", "kaniko")
            for tool in order:
                row = run(args, tool, "rs%s-%d-%s" % (stamp, i, tool))
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print("%-7s walls %s  registry CPU %.3f s/build  %.0f requests/build" % (
                    tool, " ".join("%.2f" % w for w in row["walls"]), row["registry_cpu_s"], row["requests"]))
    for tool in ("kaniko", "trowel"):
        mine = [r for r in rows if r["tool"] == tool]
        print("%s: wall %.3f s, registry CPU %.3f s, %.0f requests (medians per build)" % (
            tool, statistics.median(w for r in mine for w in r["walls"]),
            statistics.median(r["registry_cpu_s"] for r in mine), statistics.median(r["requests"] for r in mine)))


if __name__ == "__main__":
    main()
