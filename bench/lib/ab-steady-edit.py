#!/usr/bin/env python3
"""W6's edit in a pipeline's steady state: two trowel binaries alternating on one project whose
cache repository already holds a long history (issue 17).

    bench/lib/ab-steady-edit.py --registry HOST:PORT --a OLD --b NEW --cache-dir BENCH_CACHE
                                [--history 9] [--pairs 6] [--state /dev/shm/steady]
                                [--access-log FILE] [--own-dirs] --out results.jsonl

bench/run.sh's edit mode rebuilds after one edit of a project built once, so each step's cache
entry lists no earlier entries. A CI pipeline that has run for a while differs: every entry
lists up to 8 earlier ones of its step. This builds W6 (its context copied under --state, the
bench's Dockerfile, kaniko's usual flags, one cache dir and work dir throughout, as a runner
with a persistent cache dir) cold with B, then --history edits with B to fill the history, then
--pairs pairs of edits, each pair one build with A and one with B (the order swapping every
pair). Each edit appends a line to the first source file, so every build misses from the COPY
on. From each build's trace: when the compile RUN started, the COPY's duration, the build's; with
--access-log (the registry's access log, `info` level), the requests the registry answered during
the build and the bytes it sent. One JSON line per timed build goes to --out; medians are
printed at the end.

With --own-dirs each binary has a cache dir and a work dir of its own, each made by a cold build
of its own before the history (which B then fills alone, A joining with one edit before the
pairs): what a binary keeps in its cache dir for the next build is then its own, as on a runner
that always runs one version. The root index the unpacked-layer store keeps is keyed by the
program, so two binaries sharing one cache dir would each find the other's and walk the root.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

W6 = "W6"


def requests(log):
    if not log:
        return None, None
    n = sent = 0
    with open(log, "rb") as f:
        for line in f:
            if b"response completed" not in line:
                continue
            n += 1
            i = line.find(b"http.response.written=")
            if i >= 0:
                digits = line[i + len(b"http.response.written="):].split(None, 1)[0]
                sent += int(digits) if digits.isdigit() else 0
    return n, sent


def edit(ctx, note):
    sources = sorted(os.path.join(d, f) for d, _, fs in os.walk(ctx) for f in fs if f.endswith(".c"))
    with open(sources[0], "a") as f:
        f.write("/* %s */\n" % note)


def build(binary, args, ctx, tag, trace, which="b"):
    reg = args.registry
    own = "-" + which if args.own_dirs else ""
    argv = [binary, "build", "--context", ctx,
            "--dockerfile", os.path.join(args.cache_dir, "dockerfiles", W6, "Dockerfile"),
            "--destination", "%s/steady/%s:latest" % (reg, tag), "--build-arg", "BASE_REGISTRY=%s" % reg,
            "--isolation", "chroot", "--work-dir", os.path.join(args.state, "work" + own), "--log-format", "text",
            "--cache=true", "--cache-repo", "%s/steady-cache/%s" % (reg, tag),
            "--cache-dir", os.path.join(args.state, "cache-dir" + own), "--trace", trace]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("build failed:\n" + p.stderr[-3000:])


def phases(trace):
    out = {}
    with open(trace) as f:
        next(f)
        for line in f:
            e = json.loads(line)
            ev = e.get("event")
            if ev == "step_started" and e["id"]["step"] == 3:
                out["compile_start_ms"] = e["ms"]
            elif ev == "step_finished" and e["id"]["step"] == 2:
                out["copy_ms"] = e["duration_ms"]
            elif ev == "build_finished":
                out["build_ms"] = e["duration_ms"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--a", required=True, help="the binary before")
    ap.add_argument("--b", required=True, help="the binary after (also fills the history)")
    ap.add_argument("--cache-dir", required=True, help="bench.py's generated contexts and Dockerfiles")
    ap.add_argument("--history", type=int, default=9)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--state", default="/dev/shm/steady")
    ap.add_argument("--access-log")
    ap.add_argument("--own-dirs", action="store_true", help="a cache dir and work dir per binary")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.state, ignore_errors=True)
    for own in (("-a", "-b") if args.own_dirs else ("",)):
        os.makedirs(os.path.join(args.state, "work" + own))
        os.makedirs(os.path.join(args.state, "cache-dir" + own))
    ctx = os.path.join(args.state, "ctx")
    shutil.copytree(os.path.join(args.cache_dir, "contexts", W6), ctx, symlinks=True)
    tag = "s%d" % time.time_ns()
    trace = os.path.join(args.state, "trace")
    build(args.b, args, ctx, tag, trace)
    if args.own_dirs:
        build(args.a, args, ctx, tag, trace, "a")
    for i in range(args.history):
        edit(ctx, "history %d" % i)
        build(args.b, args, ctx, tag, trace)
    if args.own_dirs:
        edit(ctx, "a joins")
        build(args.a, args, ctx, tag, trace, "a")
    rows = []
    with open(args.out, "a") as out:
        for i in range(args.pairs):
            for name in (("a", "b") if i % 2 == 0 else ("b", "a")):
                edit(ctx, "pair %d %s" % (i, name))
                n0, s0 = requests(args.access_log)
                build(getattr(args, name), args, ctx, tag, trace, name)
                time.sleep(0.3)  # the access log's last lines
                n1, s1 = requests(args.access_log)
                row = {"binary": name, "pair": i, **phases(trace), "load": os.getloadavg()[0]}
                if n0 is not None:
                    row["requests"], row["bytes_sent"] = n1 - n0, s1 - s0
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(json.dumps(row))
    for name in ("a", "b"):
        mine = [r for r in rows if r["binary"] == name]
        summary = {k: statistics.median(r[k] for r in mine)
                   for k in ("compile_start_ms", "copy_ms", "build_ms", "requests", "bytes_sent") if k in mine[0]}
        print(name, summary)


if __name__ == "__main__":
    main()
