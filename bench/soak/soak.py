#!/usr/bin/env python3
"""The soak (issue 20): N trowel builds in a row through a proxy that injects a fault into RATE
of all registry requests (proxy.py: resets, 500/502/503, 429 with Retry-After, cut and stalled
bodies, cut and stalled uploads), over a mix of busybox Dockerfiles, with and without the layer
cache, each pushed to a fresh tag of the local registry.

Each build is classed:
  ok       exit 0, and the pushed image is complete: its manifest (by the digest trowel wrote)
           and every blob it names answer HEAD on the registry itself (not through the proxy)
  clean    non-zero exit, an `error` line naming what failed, no panic, and nothing pushed
           (the destination tag does not exist)
  other    anything else: a crash or panic, a signal, a build killed at the time bound, a
           pushed image missing a blob, a failed build whose tag exists. Must be 0.

While a build runs, trowel's /proc/PID/status VmHWM (peak RSS) and the count of /proc/PID/fd
are sampled every 50 ms; the results give each build's peak, to compare the first builds of the
run with the last (no leak: trowel is one process per build, so a leak would show as growth in
what a build needs as the registry, cache repository and proxy state grow).

Usage: bench/soak/soak.py --trowel PATH --registry HOST:PORT [--builds 300] [--rate 0.05]
       [--stall-timeout 3s] [--seed 20] [--out DIR]      (scripts/soak.sh sets everything up)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy as faultproxy  # noqa: E402

BOUND = 600  # seconds a build may take before it counts as hung

DOCKERFILES = [
    # a RUN layer unique to the build (a new blob to push every time)
    "FROM {base}\nARG N\nRUN echo build-$N > /n && head -c 200000 /dev/urandom > /r\n",
    # COPY from the context, and a RUN that is the same every time (a cache hit with --cache)
    "FROM {base}\nARG N\nCOPY data.txt /data.txt\nRUN mkdir -p /app && echo fixed > /app/fixed\nRUN echo $N > /app/n\n",
    # two stages, COPY --from
    "FROM {base} AS b\nARG N\nRUN echo $N > /out && head -c 500000 /dev/urandom > /blob\n"
    "FROM {base}\nCOPY --from=b /out /blob /srv/\n",
]


def sample(pid, stop, out):
    peak_rss, peak_fds = 0, 0
    while not stop.is_set():
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_rss = max(peak_rss, int(line.split()[1]))
            peak_fds = max(peak_fds, len(os.listdir("/proc/%d/fd" % pid)))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
        stop.wait(0.05)
    out["rss_kib"], out["fds"] = peak_rss, peak_fds


def head_ok(registry, repo, kind, digest, accept=None):
    req = urllib.request.Request("http://%s/v2/%s/%s/%s" % (registry, repo, kind, digest), method="HEAD")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status == 200
    except Exception:
        return False


def manifest(registry, repo, ref):
    req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, repo, ref))
    req.add_header("Accept", "application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def complete(registry, repo, tag, digest):
    """Missing pieces of the pushed image, as text (empty: complete)."""
    m = manifest(registry, repo, digest)
    if m is None:
        return ["manifest %s" % digest]
    t = manifest(registry, repo, tag)
    missing = [] if t is not None else ["tag %s" % tag]
    for d in [m["config"]] + m["layers"]:
        if not head_ok(registry, repo, "blobs", d["digest"]):
            missing.append("blob %s" % d["digest"])
    return missing


def one(i, args, prox, work):
    kind = i % len(DOCKERFILES)
    cache = (i // len(DOCKERFILES)) % 2 == 1
    ctx = tempfile.mkdtemp(dir=work)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILES[kind].format(base="%s/busybox:1.35" % prox.addr))
    with open(os.path.join(ctx, "data.txt"), "w") as f:
        f.write("data %d\n" % (i % 7))
    # Repositories of this run alone: a tag or a cache entry of an earlier run must not be
    # taken for this one's.
    repo, tag = "%s/img%d" % (args.run, kind), "b%d" % i
    digest_file = os.path.join(ctx, "digest")
    cmd = [args.trowel, "build", "--context", ctx, "--destination", "%s/%s:%s" % (prox.addr, repo, tag),
           "--digest-file", digest_file, "--build-arg", "N=%d" % i, "--stall-timeout", args.stall_timeout,
           "--verbosity", "info"]
    if cache:
        cmd += ["--cache", "--cache-repo", "%s/%s/cache" % (prox.addr, args.run)]
    t0 = time.time()
    log_path = os.path.join(args.out, "logs", "build-%03d.log" % i)
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        stop, peaks = threading.Event(), {}
        th = threading.Thread(target=sample, args=(p.pid, stop, peaks))
        th.start()
        hung = False
        try:
            p.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            hung = True
            p.kill()
            p.wait()
        stop.set()
        th.join()
    took = time.time() - t0
    text = open(log_path, errors="replace").read()
    rec = {"build": i, "dockerfile": kind, "cache": cache, "exit": p.returncode, "seconds": round(took, 1),
           "rss_kib": peaks.get("rss_kib", 0), "fds": peaks.get("fds", 0)}
    # What the build said of its cache and of the faults it met (one warning per retry).
    rec["retries"] = text.count("retrying in ")
    rec["cache_line"] = next((line.split("] ", 1)[-1] for line in text.splitlines() if "] Cache: " in line), "")
    if hung:
        rec["class"], rec["why"] = "other", "hung past %d s" % BOUND
    elif p.returncode < 0 or "panicked" in text:
        rec["class"], rec["why"] = "other", "crash (exit %d)" % p.returncode
    elif p.returncode == 0:
        digest = open(digest_file).read().strip() if os.path.exists(digest_file) else ""
        missing = complete(args.registry, repo, tag, digest) if digest else ["digest file"]
        if missing:
            rec["class"], rec["why"] = "other", "pushed but missing: " + ", ".join(missing)
        else:
            rec["class"] = "ok"
    else:
        errs = [line for line in text.splitlines() if "error" in line.lower()]
        if manifest(args.registry, repo, tag) is not None:
            rec["class"], rec["why"] = "other", "failed, yet the tag was pushed"
        elif not errs:
            rec["class"], rec["why"] = "other", "failed without an error line"
        else:
            rec["class"], rec["why"] = "clean", errs[-1][-300:]
    if rec["class"] == "ok":
        os.remove(log_path)
    subprocess.run(["rm", "-rf", ctx])
    return rec


def summary(records, prox, started, load):
    n = len(records)
    by = {c: sum(1 for r in records if r["class"] == c) for c in ("ok", "clean", "other")}

    def stats(rs, key):
        v = sorted(r[key] for r in rs)
        return {"median": v[len(v) // 2], "max": v[-1]} if v else {}

    k = min(50, n)
    return {
        "builds": n, "classes": by, "rate": prox.rate, "requests": prox.requests, "faults": prox.counts,
        "hours": round((time.time() - started) / 3600, 2), "load_avg_at_start": load,
        "first": {"rss_kib": stats(records[:k], "rss_kib"), "fds": stats(records[:k], "fds")},
        "last": {"rss_kib": stats(records[-k:], "rss_kib"), "fds": stats(records[-k:], "fds")},
        "seconds": stats(records, "seconds"),
        "retries": sum(r.get("retries", 0) for r in records),
        "others": [r for r in records if r["class"] == "other"],
        "cleans": [r for r in records if r["class"] == "clean"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trowel", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--builds", type=int, default=300)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--stall-timeout", default="3s")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", default="soak-results")
    args = ap.parse_args()
    args.run = "soak-%d" % int(time.time())
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    prox = faultproxy.Proxy(args.registry, args.rate, args.seed)
    work = tempfile.mkdtemp(prefix="trowel-soak-")
    started, load = time.time(), os.getloadavg()
    records = []
    with open(os.path.join(args.out, "builds.jsonl"), "w") as out:
        for i in range(args.builds):
            rec = one(i, args, prox, work)
            records.append(rec)
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print("%3d %-5s %5.1fs rss=%dKiB fds=%d %s" % (i, rec["class"], rec["seconds"], rec["rss_kib"],
                                                          rec["fds"], rec.get("why", "")), flush=True)
    s = summary(records, prox, started, load)
    s["load_avg_at_end"] = os.getloadavg()
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    print(json.dumps({k: s[k] for k in ("builds", "classes", "faults", "first", "last", "seconds")}, indent=2))
    return 1 if s["classes"]["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
