#!/usr/bin/env python3
"""Runs the benchmark matrix and writes raw results as JSON Lines (one line per build).

For each repetition, each workload and each mode, every tool builds and pushes the same
Dockerfile to the same local registry; tools alternate (the order rotates every repetition) so
slow drifts in machine load fall on all of them alike. Each build is verified afterwards (skopeo +
umoci) outside the timed region. `uptime` is recorded before and after every build.

Usually started by bench/run.sh, which prepares the registry, base images and trowel binary.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tools  # noqa: E402
import verify  # noqa: E402
import workloads  # noqa: E402


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def parse_time_v(path):
    """Peak RSS (KiB) and exit status from a /usr/bin/time -v report."""
    rss, status = None, None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("Maximum resident set size (kbytes):"):
                rss = int(line.rsplit(":", 1)[1])
            elif line.startswith("Exit status:"):
                status = int(line.rsplit(":", 1)[1])
            elif line.startswith("Command terminated by signal"):
                status = 128 + int(line.rsplit(" ", 1)[1])
    return rss, status


def run_phases(phases, out_dir):
    """Runs the phases in order under /usr/bin/time -v; stops at the first failure.

    A phase is (name, argv, env) or (name, argv, env, tools.AsUser): the latter runs as that
    user with exactly `env` (nothing of the bench's own), the ids changed in the forked child
    before /usr/bin/time is exec'd, so the time measured holds no launcher's exec (setpriv,
    env) that a user starting the tool from a shell would not pay either."""
    result = {"phases": [], "ok": True}
    for i, (name, argv, env, *as_user) in enumerate(phases):
        tv = os.path.join(out_dir, "time-%d-%s.txt" % (i, name))
        log = os.path.join(out_dir, "log-%d-%s.txt" % (i, name))
        kwargs = {"env": dict(os.environ, **env)}
        if as_user:
            user = as_user[0]
            # /usr/bin/time, now the user's, writes its report into a file made for it.
            open(tv, "w").close()
            os.chown(tv, user.uid, user.gid)
            kwargs = {"env": dict(env) if user.clean_env else dict(os.environ, **env), "user": user.uid,
                      "group": user.gid, "extra_groups": user.groups}
        with open(log, "wb") as lf:
            t0 = time.monotonic()
            p = subprocess.run(["/usr/bin/time", "-v", "-o", tv] + argv, stdout=lf, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, **kwargs)
            wall = time.monotonic() - t0
        rss, status = parse_time_v(tv)
        result["phases"].append({"name": name, "argv": argv, "wall_s": round(wall, 3), "max_rss_kb": rss,
                                 "exit": p.returncode})
        if p.returncode != 0:
            result["ok"] = False
            with open(log, errors="replace") as lf:
                result["error"] = "%s exited %d: %s" % (name, p.returncode, lf.read()[-1500:])
            break
    result["wall_s"] = round(sum(ph["wall_s"] for ph in result["phases"]), 3)
    rss = [ph["max_rss_kb"] for ph in result["phases"] if ph["max_rss_kb"] is not None]
    result["max_rss_kb"] = max(rss) if rss else None
    return result


def trace_stats(path):
    """What trowel's trace says about where the time went."""
    if not os.path.exists(path):
        return None
    steps, snapshots, layers, unpacked, pushes, total = [], [], [], [], [], None
    last_ms, tail = 0, None
    with open(path) as f:
        for line in f:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "step_finished":
                steps.append({"id": ev["id"], "status": ev.get("status"), "ms": ev.get("duration_ms")})
            elif kind == "snapshot":
                s = ev.get("stats", {})
                snapshots.append({"id": ev["id"], "files_walked": s.get("files_walked"),
                                  "bytes_hashed": s.get("bytes_hashed"), "ms": s.get("duration_ms"),
                                  "changes": len(ev.get("changes", []))})
            elif kind == "layer_written":
                layers.append({"id": ev["id"], "ms": ev.get("duration_ms"), "size": ev["layer"].get("size"),
                               "uncompressed": ev["layer"].get("uncompressed_size"), "entries": ev.get("entries")})
            elif kind == "base_unpacked":
                unpacked.append({"stage": ev.get("stage"), "ms": ev.get("duration_ms"), "entries": ev.get("entries"),
                                 "bytes": ev.get("bytes"), "layers": ev.get("layers"),
                                 "from_store": ev.get("from_store"), "store_unused": ev.get("store_unused")})
            elif kind == "push_finished":
                pushes.append({"ms": ev.get("duration_ms")})
            elif kind == "build_finished":
                total = ev.get("duration_ms")
                # From the last event before it (push, cache summary) to the end: removing build roots.
                tail = ev.get("ms", 0) - last_ms
            last_ms = ev.get("ms", last_ms)
    return {"steps": steps, "snapshots": snapshots, "layers": layers, "base_unpacked": unpacked,
            "pushes": pushes, "total_ms": total, "finish_tail_ms": tail}


LOG_PATTERNS = {
    "unpacked": re.compile(r"Unpacked (\d+) layer\(s\): (\d+) entries, .* in (\d+) ms"),
    "snapshot": re.compile(r"Snapshot: (\d+) changed path\(s\), (\d+) files walked in (\d+) ms"),
    "cache": re.compile(r"Cache: (\d+) hit\(s\), (\d+) miss\(es\)"),
    "built": re.compile(r"Built sha256:\S+ in ([\d.]+)s"),
}


def log_stats(path):
    """What trowel's own log says: unpack and snapshot timings, cache hits (no trace needed)."""
    if not os.path.exists(path):
        return None
    stats = {"unpacked": [], "snapshots": [], "cache": None, "built_s": None}
    with open(path, errors="replace") as f:
        for line in f:
            m = LOG_PATTERNS["unpacked"].search(line)
            if m:
                stats["unpacked"].append({"layers": int(m[1]), "entries": int(m[2]), "ms": int(m[3])})
            m = LOG_PATTERNS["snapshot"].search(line)
            if m:
                stats["snapshots"].append({"changes": int(m[1]), "files_walked": int(m[2]), "ms": int(m[3])})
            m = LOG_PATTERNS["cache"].search(line)
            if m:
                stats["cache"] = {"hits": int(m[1]), "misses": int(m[2])}
            m = LOG_PATTERNS["built"].search(line)
            if m:
                stats["built_s"] = float(m[1])
    return stats


def perf_top(data, text_out):
    """The flat profile (self time per command and symbol) of a perf.data, top entries."""
    p = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "comm,dso,symbol",
                        "--percent-limit", "1", "-g", "none"], capture_output=True, text=True)
    with open(text_out, "w") as f:
        f.write(p.stdout)
    top = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "%" in line:
            top.append(" ".join(line.split()))
    os.unlink(data)
    return top[:25]


def run_chain(args, tool, wl, rep, group, chain, fset, ctx, dockerfile, platforms, results, expected, verified,
              scratch):
    """One tool's chain of builds sharing a state: cold, warm (and edit), or nocache alone."""
    for i, mode in enumerate(chain):
        state = os.path.join(args.fs_dir, "state", tool.name, "%s-r%d-%s-%s" % (wl, rep, fset, group))
        out_dir = os.path.join(args.out, "runs", "%s-%s-%s-%s-%s-r%d" % (args.fs_name, wl, tool.name, fset, mode, rep))
        os.makedirs(out_dir, exist_ok=True)
        run = tools.Run(tool.name, wl, mode, rep, args.fs_name, args.registry, ctx, dockerfile,
                        state, out_dir, platforms, flagset=fset)
        if mode == "edit":
            workloads.edit(wl, ctx)  # outside the timed region, as a checkout is
        phases = tool.phases(run)  # also deletes the tool's previous state
        # This machine's ext4 has no journal: then every inode allocation skips
        # inodes deleted in the last dirty_expire interval (30 s) whose inode
        # table block is still dirty (ext4's recently_deleted()), which makes file
        # creation many times slower right after a big deletion — such as the
        # previous build's cleanup. Writing back first gives every build the same
        # clean start a fresh CI machine has.
        os.sync()
        before = uptime()
        res = run_phases(phases, out_dir)
        after = uptime()
        rec = {"kind": "run", "fs": args.fs_name, "workload": wl, "tool": tool.name, "mode": mode,
               "flags": fset, "chain": group, "chain_last": i == len(chain) - 1 or not res["ok"],
               "rep": rep, "destination": run.destination, "uptime_before": before,
               "uptime_after": after, **res}
        if res["ok"]:
            try:
                if platforms:
                    digest, index, _, size = verify.inspect_index(run.destination, platforms)
                    rec["index_media_type"] = index.get("mediaType")
                else:
                    digest, _, _, size = verify.inspect(run.destination)
                rec["digest"], rec["pushed_bytes"] = digest, size
                if args.no_verify:
                    rec["verified"] = "skipped"
                elif digest in verified:
                    rec["verified"] = "same digest as %s" % verified[digest]
                else:
                    verify.verify(wl, run.destination, ctx, expected, scratch)
                    verified[digest] = run.destination
                    rec["verified"] = "ok"
            except verify.VerifyError as e:
                rec["verified"] = "FAILED: %s" % e
        if tool.name.startswith("trowel"):
            rec["log"] = log_stats(os.path.join(out_dir, "log-0-build+push.txt"))
            rec["trace"] = trace_stats(os.path.join(out_dir, "trace.jsonl"))
        perf_data = os.path.join(out_dir, "perf.data")
        if os.path.exists(perf_data):
            rec["perf_top"] = perf_top(perf_data, os.path.join(out_dir, "perf.txt"))
        results.write(json.dumps(rec) + "\n")
        results.flush()
        print("%-5s %-4s %-7s %-6s %-7s r%d  %7.2fs  %6s MB  %s" % (
            args.fs_name, wl, tool.name, fset, mode, rep, res["wall_s"],
            "?" if res["max_rss_kb"] is None else res["max_rss_kb"] // 1024,
            rec.get("verified", "BUILD FAILED: " + res.get("error", "")[-300:])), flush=True)
        if not res["ok"]:
            break
    tool.cleanup(run)


def image_context(args):
    """trowel's own image files for its container (scripts/image-context.sh --no-git: the binary,
    its loader and libraries, CA certificates, all under trowel/), made once per results dir."""
    out = os.path.join(args.out, "trowel-image-context")
    if not os.path.isdir(os.path.join(out, "trowel")):
        script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "image-context.sh")
        subprocess.run([script, "--no-git", args.trowel, out], check=True)
    return os.path.join(out, "trowel")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--trowel", required=True)
    ap.add_argument("--kaniko", default=os.environ.get("KANIKO_EXECUTOR"))
    ap.add_argument("--cache-dir", required=True, help="generated contexts (kept between runs)")
    ap.add_argument("--fs-dir", required=True, help="where the tools keep their state (the fs under test)")
    ap.add_argument("--fs-name", required=True, help="label of that file system: ext4, tmpfs")
    ap.add_argument("--fs-desc", default="", help="what that file system is, for the report")
    ap.add_argument("--out", required=True, help="results directory (results.jsonl, logs, traces)")
    ap.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6")
    ap.add_argument("--modes", default="cold,warm,edit",
                    help="among cold, warm, edit (W6 only: after warm, one source file changed), "
                         "fresh (last: local state wiped, cache repository kept), nocache")
    ap.add_argument("--flags", default="kaniko,best",
                    help="flag sets: kaniko (kaniko's usual flags, no --cache-copy-layers), best (with it)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tools", default="trowel,buildah,kaniko",
                    help="among trowel, buildah, kaniko (when --kaniko/KANIKO_EXECUTOR), trowel-trace, "
                         "trowel-ctr (container isolation, in a container as kaniko runs), trowel-rl "
                         "(rootless isolation, as an ordinary user), trowel-rl-trace (the same with --trace)")
    ap.add_argument("--resume", action="store_true",
                    help="skip every chain (a tool's cold, warm, edit builds) --out's results.jsonl already has")
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()

    available = {"trowel": lambda: tools.Trowel(args.trowel), "trowel-trace": lambda: tools.Trowel(args.trowel, True),
                 "trowel-perf": lambda: tools.Trowel(args.trowel, perf=True),
                 "trowel-ctr": lambda: tools.TrowelContainer(args.trowel, image_context(args)),
                 "trowel-rl": lambda: tools.TrowelRootless(args.trowel),
                 "trowel-rl-trace": lambda: tools.TrowelRootless(args.trowel, trace=True),
                 "buildah": lambda: tools.Buildah("fresh" in args.modes.split(",")), "kaniko": lambda: tools.Kaniko(args.kaniko) if args.kaniko else None}
    tool_list = [t for t in (available[n]() for n in args.tools.split(",")) if t is not None]
    # Rootless next to chroot: both started through a forked child that sets ids (tools.AsUser).
    if any(isinstance(t, tools.TrowelRootless) for t in tool_list):
        for t in tool_list:
            if isinstance(t, tools.Trowel):
                t.same_launch = True
    modes = args.modes.split(",")
    flagsets = args.flags.split(",")
    for f in flagsets:
        if f not in tools.FLAGSETS:
            sys.exit("unknown flag set %r (among %s)" % (f, ", ".join(tools.FLAGSETS)))
    if ("warm" in modes or "edit" in modes or "fresh" in modes) and "cold" not in modes:
        sys.exit("warm, edit and fresh modes need cold mode (they rebuild with the cold build's state)")
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")
    done = set()
    if args.resume and os.path.exists(results_path):
        with open(results_path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut short by an interruption
                if r.get("kind") == "run" and r.get("chain_last"):
                    done.add((r["fs"], r["workload"], r["tool"], r.get("flags"), r["chain"], r["rep"]))
    results = open(results_path, "a")
    meta = {"kind": "meta", "fs": args.fs_name, "fs_desc": args.fs_desc, "fs_dir": args.fs_dir, "registry": args.registry,
            "versions": {t.name: t.version() for t in tool_list},
            "flags": {t.name: {fs_: {m: t.flags(m, fs_) for m in modes} for fs_ in flagsets} for t in tool_list},
            "flagsets": flagsets, "uptime": uptime(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    results.write(json.dumps(meta) + "\n")
    results.flush()
    expected = verify.Expected(args.cache_dir)
    verified = {}
    scratch = os.path.join(args.out, "scratch")
    os.makedirs(scratch, exist_ok=True)

    for rep in range(1, args.reps + 1):
        for wl in args.workloads.split(","):
            ctx, dockerfile = workloads.prepare(wl, args.cache_dir)
            platforms = workloads.platforms(wl)
            # kaniko builds one platform per run: it has no multi-platform cell.
            wl_tools = [t for t in tool_list if t.multi_platform or not platforms]
            # Rotate the tool order every repetition (and per workload) so neither always goes first.
            shift = (rep + list(workloads.WORKLOADS).index(wl)) % len(wl_tools)
            order = wl_tools[shift:] + wl_tools[:shift]
            groups = [m for m in ("cold", "nocache") if m in modes]
            for group in groups:
                chain = [group]
                if group == "cold":
                    # fresh last: it wipes the local state the others rebuild with.
                    chain += [m for m in ("warm", "edit", "fresh")
                              if m in modes and (m != "edit" or workloads.has_edit(wl))]
                for tool in order:
                    # buildah's flags are the same in every flag set, and no tool's nocache build
                    # has caching flags: those run once and every flag set compares against them.
                    sets = flagsets if group == "cold" and tool.name != "buildah" else ["any"]
                    for fset in sets:
                        if (args.fs_name, wl, tool.name, fset, group, rep) in done:
                            print("%-5s %-4s %-7s %-6s r%d  (already in %s)" % (args.fs_name, wl, tool.name, fset, rep,
                                                                              results_path), flush=True)
                            continue
                        try:
                            run_chain(args, tool, wl, rep, group, chain, fset, ctx, dockerfile, platforms, results,
                                      expected, verified, scratch)
                        finally:
                            workloads.restore(wl, ctx)
    results.write(json.dumps({"kind": "end", "uptime": uptime(),
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")


if __name__ == "__main__":
    main()
