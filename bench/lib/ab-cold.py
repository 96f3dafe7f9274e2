#!/usr/bin/env python3
"""Alternating A/B cold builds of one Dockerfile with two trowel binaries (issue 17's fixed costs).

    bench/lib/ab-cold.py --registry HOST:PORT --a OLD --b NEW --dockerfile F --context DIR
                         [--pairs 8] [--state /dev/shm/ab] [--trace] [--no-cache-dir]
                         [--registry-pid PID] [--access-log FILE] [--warm K] --out results.jsonl

Each pair builds once with A and once with B (the order swapping every pair, so drift in the
machine's load falls on both alike), cold with kaniko's usual flags as bench/run.sh runs trowel:
`--cache=true --cache-repo` (or, with --nocache, no caching), a fresh cache repository, destination, work dir and cache dir per
build, state under --state (a tmpfs for the bench's tmpfs table). The wall time is a monotonic
clock around the whole process; `uptime`'s load is recorded with every build. With --trace each
build also writes a trace, from which the phases (first event, `build_finished`) are taken, so
the time outside the trace (process start-up, exit) is the wall time minus `build_finished`'s
duration. With --registry-pid (the registry's process, which must serve no one else meanwhile)
each build also records the registry's CPU time spent during it (`utime + stime` of
/proc/PID/stat, read again a moment after the build so that late answers count), and with
--access-log (its access log at `info` level) the requests it answered. With --warm K each cold
build is followed by K unchanged rebuilds with the same state, destination and cache repository
(`"mode": "warm"`; an unchanged rebuild's fixed costs: its lookups, the push that finds the
image there, the upload sessions it opens and cancels). One JSON line per build goes to --out;
medians are printed at the end, per mode.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import time
import uuid


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def registry_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def requests(log):
    with open(log, "rb") as f:
        return sum(1 for line in f if b"response completed" in line)


def build(binary, args, tag, trace_path):
    """A cold build and, with --warm, the rebuilds after it: one record each."""
    state = os.path.join(args.state, tag)
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(os.path.join(state, "work"))
    if not args.no_cache_dir:
        os.makedirs(os.path.join(state, "cache-dir"))
    reg = args.registry
    argv = [binary, "build", "--context", args.context, "--dockerfile", args.dockerfile,
            "--destination", "%s/ab/%s:latest" % (reg, tag), "--build-arg", "BASE_REGISTRY=%s" % reg,
            "--isolation", "chroot", "--work-dir", os.path.join(state, "work"), "--log-format", "text"]
    if not args.nocache:
        argv += ["--cache=true", "--cache-repo", "%s/ab-cache/%s" % (reg, tag),
                 "--cache-dir", os.path.join(state, "cache-dir")]
    if trace_path:
        argv += ["--trace", trace_path]
    recs = [timed(argv, args, trace_path, "cold")]
    for _ in range(args.warm):
        recs.append(timed(argv, args, trace_path, "warm"))
    shutil.rmtree(state, ignore_errors=True)
    return recs


def timed(argv, args, trace_path, mode):
    """One run of `argv`, timed."""
    subprocess.run(["sync"])
    before = load()
    cpu0 = registry_cpu(args.registry_pid) if args.registry_pid else None
    req0 = requests(args.access_log) if args.access_log else None
    t0 = time.monotonic()
    w0 = time.time()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    w1 = time.time()
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (argv[0], p.returncode, p.stderr.decode()[-2000:]))
    rec = {"wall_s": round(wall, 4), "load": before, "mode": mode}
    if cpu0 is not None or req0 is not None:
        time.sleep(0.3)
    if cpu0 is not None:
        rec["registry_cpu_s"] = round(registry_cpu(args.registry_pid) - cpu0, 3)
    if req0 is not None:
        rec["requests"] = requests(args.access_log) - req0
    if trace_path:
        rec.update(phases(trace_path, w0, w1))
        os.unlink(trace_path)
    return rec


def phases(path, w0, w1):
    """Milliseconds of the trace's marks: the build's own duration, its push and the first stage's
    root made (`base_unpacked_ms`: when the first root was ready), each stage's wait for its root
    (`root_wait_ms_stage_N`: `base_unpacked`'s duration); and the time
    outside the trace: from the process's start to the trace's start (`pre_ms`, the header's
    wall-clock `started`, millisecond precision) and from its last event to the process's
    exit being seen (`post_ms`)."""
    out = {}
    last = 0
    with open(path) as f:
        for n, line in enumerate(f):
            ev = json.loads(line)
            if n == 0:
                started = datetime.datetime.strptime(ev["started"], "%Y-%m-%dT%H:%M:%S.%fZ")
                started = started.replace(tzinfo=datetime.timezone.utc).timestamp()
                out["pre_ms"] = round((started - w0) * 1000, 1)
                continue
            last = max(last, ev.get("ms", 0))
            kind = ev.get("event")
            t = ev.get("ms")
            if kind == "build_finished":
                out["build_finished_ms"] = ev.get("duration_ms")
            if kind in ("push_started", "push_finished", "stage_finished", "base_unpacked") and t is not None:
                out.setdefault(kind + "_ms", t)
            if kind == "base_unpacked":
                # How long each stage waited for its root (a later stage's base fetched ahead).
                out["root_wait_ms_stage_%d" % ev["stage"]] = ev.get("duration_ms")
    if "pre_ms" in out:
        out["post_ms"] = round((w1 - started) * 1000 - last, 1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", required=True)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--dockerfile", required=True)
    ap.add_argument("--context", required=True)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--state", default="/dev/shm/ab-cold")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--nocache", action="store_true", help="no --cache (the per-RUN workload: sandbox cost alone)")
    ap.add_argument("--no-cache-dir", action="store_true",
                    help="--cache-dir names a directory that does not exist (a CI pod with no /cache): no unpacked-layer store")
    ap.add_argument("--registry-pid", type=int, help="the registry's process: its CPU time per build")
    ap.add_argument("--access-log", help="the registry's access log: the requests per build")
    ap.add_argument("--warm", type=int, default=0, help="unchanged rebuilds after each cold build")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = {"a": [], "b": []}
    with open(args.out, "a") as out:
        for i in range(args.pairs):
            order = ["a", "b"] if i % 2 == 0 else ["b", "a"]
            for which in order:
                tag = "%s-%s" % (which, uuid.uuid4().hex[:10])
                trace = os.path.join(args.state, tag + ".trace.jsonl") if args.trace else None
                os.makedirs(args.state, exist_ok=True)
                for rec in build(getattr(args, which), args, tag, trace):
                    rec.update({"pair": i, "binary": which, "path": getattr(args, which), "label": args.label,
                                "dockerfile": args.dockerfile, "traced": args.trace, "nocache": args.nocache,
                                "no_cache_dir": args.no_cache_dir})
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                    results[which].append(rec)
                    print(json.dumps(rec), flush=True)
    for which, mode in [(w, m) for m in (("cold", "warm") if args.warm else ("cold",)) for w in ("a", "b")]:
        walls = [r["wall_s"] for r in results[which] if r["mode"] == mode]
        line = "%s %s: median wall %.4f s over %d (min %.4f max %.4f)" % (
            which, mode, statistics.median(walls), len(walls), min(walls), max(walls))
        these = [r for r in results[which] if r["mode"] == mode]
        if args.trace:
            fin = [r["build_finished_ms"] for r in these if r.get("build_finished_ms") is not None]
            if fin:
                line += ", median build_finished %d ms, outside the trace %d ms" % (
                    statistics.median(fin), statistics.median([r["wall_s"] * 1000 - r["build_finished_ms"]
                                                               for r in these]))
        for key in ("registry_cpu_s", "requests"):
            vals = [r[key] for r in these if key in r]
            if vals:
                line += ", median %s %s" % (key, statistics.median(vals))
        print(line)
    print("loads: %s" % sorted(r["load"] for r in results["a"] + results["b"]))


if __name__ == "__main__":
    main()
