#!/usr/bin/env python3
"""Turns a results directory (results.jsonl, references.json) into Markdown tables: medians,
per-pair trowel/peer ratios, peak RSS, pushed sizes, the targets (met or not, with numbers) and
where trowel's time went according to its traces.

    report.py RESULTS_DIR                      print the tables
    report.py RESULTS_DIR --readme README.md   replace the README's results section with them
    report.py RESULTS_DIR --multi-platform [--readme README.md]
                                               the two-platform run (run.sh --multi-platform): its
                                               table, what the second platform costs each tool, the
                                               index each pushed (README: its own section)
"""

import json
import os
import re
import statistics
import sys

ORDER = ["W1", "W2", "W3", "W4", "W5", "W6", "BIG", "MANY", "W1x2", "W4x2"]
MULTI = {"W1x2": "W1", "W4x2": "W4"}  # a two-platform workload and its single-platform twin
MODES = ["cold", "warm", "edit", "fresh", "nocache"]
TARGET_WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
PEERS = ["kaniko", "buildah"]
# Flag sets (tools.FLAGSETS): what each is called in the report.
FLAGSET_TITLES = {"kaniko": "kaniko's usual flags (`--cache=true --cache-repo`, no `--cache-copy-layers`)",
                  "best": "best flags (`--cache-copy-layers=true`; kaniko also `--cache-run-layers`)"}
RSS_TARGET_MB = 64
RATIO_TARGET = 0.5
PROFILED = ("trowel-trace", "trowel-perf")  # the profiling pass: trowel with --trace (and perf)


def load(results_dir):
    runs, metas, ends = [], [], []
    with open(os.path.join(results_dir, "results.jsonl")) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interrupted run (run.sh --resume continues it)
            {"run": runs, "meta": metas, "end": ends}[rec["kind"]].append(rec)
    refs = None
    p = os.path.join(results_dir, "references.json")
    if os.path.exists(p):
        with open(p) as f:
            refs = json.load(f)
    return runs, metas, ends, refs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_s(x):
    return "—" if x is None else ("%.2f" % x if x < 100 else "%.0f" % x)


def fmt_r(x):
    return "—" if x is None else "%.2f" % x


def fmt_mb(kb):
    return "—" if kb is None else "%d" % round(kb / 1024)


def flags_of(r):
    """A run's flag set; runs recorded before flag sets existed had trowel with
    --cache-copy-layers=true (the best set) and buildah as now."""
    if r.get("flags"):
        return r["flags"]
    return "any" if r["tool"] == "buildah" or r["mode"] == "nocache" else "best"


def ok_runs(runs, fs, wl, tool, mode, fset=None):
    """A cell's verified runs; with fset, only that flag set's (and the runs every set shares)."""
    return [r for r in runs if r["fs"] == fs and r["workload"] == wl and r["tool"] == tool and r["mode"] == mode
            and (fset is None or flags_of(r) in (fset, "any"))
            and r["ok"] and str(r.get("verified", "")).startswith(("ok", "same", "skipped"))]


def pair_ratios(runs, fs, wl, mode, peer, fset=None, tool="trowel"):
    """tool/peer wall time for each repetition both tools completed (the same pair of runs)."""
    t = {r["rep"]: r["wall_s"] for r in ok_runs(runs, fs, wl, tool, mode, fset)}
    p = {r["rep"]: r["wall_s"] for r in ok_runs(runs, fs, wl, peer, mode, fset)}
    return [t[k] / p[k] for k in sorted(t) if k in p and p[k] > 0]


def cell(runs, fs, wl, tool, mode, fset=None):
    rs = ok_runs(runs, fs, wl, tool, mode, fset)
    failed = [r for r in runs if r["fs"] == fs and r["workload"] == wl and r["tool"] == tool and r["mode"] == mode
              and (fset is None or flags_of(r) in (fset, "any")) and r not in rs]
    return rs, failed


def table(runs, fs, fset=None):
    """One file system's (and flag set's) table: medians, per-pair ratios to each peer and to the
    faster peer of the cell, whether that meets the goal, peak RSS and pushed size per tool."""
    tools = ["trowel"] + [p for p in PEERS if any(r["tool"] == p and r["fs"] == fs for r in runs)]
    peers = tools[1:]
    head = ["workload", "mode", "n"] + ["%s s" % t for t in tools] + ["trowel/%s" % p for p in peers]
    if len(peers) > 1:
        head += ["trowel/best peer"]
    head += ["≤ %.1f×" % RATIO_TARGET]
    head += ["%s MB" % t for t in tools] + ["pushed MB " + "/".join(tools)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    summary = {}
    for wl in ORDER:
        for mode in MODES:
            cells = {t: cell(runs, fs, wl, t, mode, fset) for t in tools}
            if not any(c[0] or c[1] for c in cells.values()):
                continue
            n = min(len(cells[t][0]) for t in tools)
            walls = {t: med([r["wall_s"] for r in cells[t][0]]) for t in tools}
            rss = {t: max([r["max_rss_kb"] for r in cells[t][0] if r["max_rss_kb"]], default=None) for t in tools}
            size = {t: med([r.get("pushed_bytes") for r in cells[t][0]]) for t in tools}
            ratios = {p: med(pair_ratios(runs, fs, wl, mode, p, fset)) for p in peers}
            peer_walls = {p: walls[p] for p in peers if walls[p] is not None}
            faster = min(peer_walls, key=peer_walls.get) if peer_walls else None
            best = ratios.get(faster) if faster else None
            summary[(wl, mode)] = {"walls": walls, "rss": rss, "ratios": ratios, "size": size,
                                   "faster": faster, "best_ratio": best}
            row = [wl, mode, str(n)]
            for t in tools:
                v = fmt_s(walls[t])
                if cells[t][1]:
                    v += " (%d failed)" % len(cells[t][1])
                row.append(v)
            row += [fmt_r(ratios[p]) for p in peers]
            if len(peers) > 1:
                row.append("—" if best is None else "%.2f (%s)" % (best, faster))
            goal = mode != "nocache" and wl in TARGET_WORKLOADS  # the extras' targets are memory and snapshots
            row.append("—" if best is None or not goal else ("yes" if best <= RATIO_TARGET else "**no**"))
            row += [fmt_mb(rss[t]) for t in tools]
            row.append("/".join("—" if size[t] is None else "%.1f" % (size[t] / 1e6) for t in tools))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), summary


def container_table(runs, fs, fset=None):
    """Container isolation (`trowel-ctr`: trowel in a fresh container per build, unpacking into its
    own /, as kaniko runs) next to kaniko, run the same way, and trowel's chroot isolation (the
    unpacked-layer store and overlay mounts) in the same run: medians, per-pair ratios."""
    others = [t for t in ("kaniko", "trowel") if any(r["tool"] == t and r["fs"] == fs for r in runs)]
    head = ["workload", "mode", "n", "trowel-ctr s"] + ["%s s" % t for t in others]
    head += ["trowel-ctr/%s" % t for t in others] + ["trowel-ctr MB"] + ["%s MB" % t for t in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for wl in ORDER:
        for mode in MODES:
            cells = {t: cell(runs, fs, wl, t, mode, fset) for t in ["trowel-ctr"] + others}
            if not cells["trowel-ctr"][0] and not cells["trowel-ctr"][1]:
                continue
            n = min(len(c[0]) for c in cells.values())
            row = [wl, mode, str(n)]
            for t, (ok, failed) in cells.items():
                v = fmt_s(med([r["wall_s"] for r in ok]))
                row.append(v + (" (%d failed)" % len(failed) if failed else ""))
            row += [fmt_r(med(pair_ratios(runs, fs, wl, mode, t, fset, tool="trowel-ctr"))) for t in others]
            row += [fmt_mb(max([r["max_rss_kb"] for r in ok if r["max_rss_kb"]], default=None))
                    for ok, _ in cells.values()]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


ROOTLESS_TRACED = ("trowel-trace", "trowel-rl-trace")  # rootless's traced pass: both isolations
ROOTLESS_GOAL = 1.10  # issue 19: rootless within 10 % of chroot


def rootless_table(runs, fs, fset=None):
    """Rootless isolation (`trowel-rl`: an ordinary user, `--isolation rootless`) next to trowel's
    chroot isolation in the same run: medians, the per-pair ratio rootless / chroot (the same
    repetition, minutes apart) and whether it is within issue 19's 10 %, peak RSS, pushed size."""
    head = ["workload", "mode", "n", "chroot s", "rootless s", "rootless/chroot", "≤ %.2f×" % ROOTLESS_GOAL,
            "rootless − chroot s",
            "chroot MB", "rootless MB", "pushed MB chroot/rootless"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for wl in ORDER:
        for mode in MODES:
            cells = {t: cell(runs, fs, wl, t, mode, fset) for t in ("trowel", "trowel-rl")}
            if not cells["trowel-rl"][0] and not cells["trowel-rl"][1]:
                continue
            n = min(len(c[0]) for c in cells.values())
            row = [wl, mode, str(n)]
            for t, (ok, failed) in cells.items():
                w = med([r["wall_s"] for r in ok])
                # Warm builds take tens of milliseconds: three decimals there.
                row.append(("%.3f" % w if w is not None and w < 1 else fmt_s(w)) +
                           (" (%d failed)" % len(failed) if failed else ""))
            ratio = med(pair_ratios(runs, fs, wl, mode, "trowel", fset, tool="trowel-rl"))
            row += [fmt_r(ratio), "—" if ratio is None else ("yes" if ratio <= ROOTLESS_GOAL else "**no**")]
            # The same pairs' absolute difference: on a build of a few tens of milliseconds a
            # ratio says little, the milliseconds say what it costs.
            rl = {r["rep"]: r["wall_s"] for r in cells["trowel-rl"][0]}
            ch = {r["rep"]: r["wall_s"] for r in cells["trowel"][0]}
            diff = med([rl[k] - ch[k] for k in rl if k in ch])
            row.append("—" if diff is None else "%+.3f" % diff)
            row += [fmt_mb(max([r["max_rss_kb"] for r in ok if r["max_rss_kb"]], default=None))
                    for ok, _ in cells.values()]
            row.append("/".join("—" if med([r.get("pushed_bytes") for r in ok]) is None
                                else "%.1f" % (med([r.get("pushed_bytes") for r in ok]) / 1e6)
                                for ok, _ in cells.values()))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def rootless_breakdown(runs, fs):
    """Where each isolation's time goes, from the traced pass (`trowel-trace`, `trowel-rl-trace`):
    wall time of the traced command, the engine's own duration (`build_finished`; the difference
    is process start-up, rootless's re-execution in its user namespace included, and exit), the
    base unpack, the steps (which include the unpack, done by the first step needing the root),
    snapshots, layers written, the push and what follows it (removing build roots)."""
    head = ("| workload | mode | isolation | n | wall s | engine s | outside engine s | base unpack s (entries) "
            "| roots from the store | steps s | snapshots s | layers written s | push s | after push s |")
    lines = [head, "|" + "---|" * 14]
    for wl in ORDER:
        for mode in MODES:
            for tool in ROOTLESS_TRACED:
                rs = [r for r in runs if r["tool"] == tool and r["workload"] == wl and r["mode"] == mode
                      and r["fs"] == fs and r["ok"] and r.get("trace")]
                if not rs:
                    continue
                tr = [r["trace"] for r in rs]
                wall = med([r["wall_s"] for r in rs])
                engine = med([(t["total_ms"] or 0) / 1000 for t in tr])
                roots = tr[0]["base_unpacked"]
                store = "%d of %d" % (sum(1 for u in roots if u.get("from_store") is not None), len(roots))
                lines.append("| %s | %s | %s | %d | %s | %s | %s | %.2f (%d) | %s | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
                    wl, mode, "rootless" if tool == "trowel-rl-trace" else "chroot", len(rs), fmt_s(wall),
                    fmt_s(engine), fmt_s(med([r["wall_s"] - (r["trace"]["total_ms"] or 0) / 1000 for r in rs])),
                    med([sum(u["ms"] or 0 for u in t["base_unpacked"]) for t in tr]) / 1000,
                    med([sum(u["entries"] or 0 for u in t["base_unpacked"]) for t in tr]),
                    store,
                    med([sum(s["ms"] or 0 for s in t["steps"] if s["id"]["step"] > 0) for t in tr]) / 1000,
                    med([sum(s["ms"] or 0 for s in t["snapshots"]) for t in tr]) / 1000,
                    med([sum(x["ms"] or 0 for x in t["layers"]) for t in tr]) / 1000,
                    med([sum(p["ms"] or 0 for p in t["pushes"]) for t in tr]) / 1000,
                    (med([t.get("finish_tail_ms") for t in tr]) or 0) / 1000))
    return "\n".join(lines)


def snapshot_stats(runs, wl="W4"):
    """W4's snapshots: timings and files walked from the timed trowel runs' logs (cold and nocache
    builds run the three RUNs; warm ones hit the cache), bytes hashed from the traced pass."""
    snaps, hashed = [], []
    for r in runs:
        if r["workload"] != wl or r["fs"] != "ext4" or not r["ok"]:
            continue
        if r["tool"] == "trowel" and r.get("log"):
            snaps += r["log"]["snapshots"]
        if r["tool"] in PROFILED and r.get("trace"):
            hashed += [s["bytes_hashed"] for s in r["trace"]["snapshots"]]
    return snaps, hashed


def targets(runs, summaries, refs):
    out = []
    for (fs, fset), summary in summaries.items():
        met, missed = [], []
        for (wl, mode), s in summary.items():
            if mode not in ("cold", "warm", "edit", "fresh") or wl not in TARGET_WORKLOADS:
                continue
            peer_walls = {p: w for p, w in s["walls"].items() if p != "trowel" and w is not None}
            if not peer_walls or s["walls"]["trowel"] is None:
                missed.append("%s %s: no comparable result" % (wl, mode))
                continue
            faster = min(peer_walls, key=peer_walls.get)
            r = s["ratios"].get(faster)
            text = "%s %s: %.2f× %s (%s s vs %s s)" % (wl, mode, r, faster, fmt_s(s["walls"]["trowel"]),
                                                     fmt_s(peer_walls[faster]))
            # W6's cold and edited builds run all of its RUNs' work: what those commands take
            # with no builder at all is a floor under every tool's time (references.sh).
            floor = (refs or {}).get("w6_runs_s")
            if wl == "W6" and mode in ("cold", "edit") and floor and peer_walls[faster]:
                text += "; its RUNs alone, no builder: %.2f s, %.2f× %s" % (floor, floor / peer_walls[faster], faster)
            (met if r is not None and r <= RATIO_TARGET else missed).append(text)
        out.append("- **trowel ≤ %.1f× the faster peer, cold, warm, edit and fresh (%s, %s)**: %s — %d of %d met." % (
            RATIO_TARGET, fs, "flags: " + fset if fset else "", "MET" if not missed else "NOT MET", len(met),
            len(met) + len(missed)))
        for t in missed:
            out.append("  - not met: " + t)
        for t in met:
            out.append("  - met: " + t)
    for (fs, fset), summary in summaries.items():
        s = summary.get(("W3", "cold"))
        if s and s["size"].get("trowel") and s["size"].get("kaniko"):
            t, k = s["size"]["trowel"], s["size"]["kaniko"]
            b = s["size"].get("buildah")
            out.append("- **pushed size ≤ kaniko's at the default settings (W3, %s, %s)**: %s — trowel %.1f MB, "
                       "kaniko %.1f MB%s." % (fs, fset, "MET" if t <= k else "NOT MET", t / 1e6, k / 1e6,
                                               ", buildah %.1f MB" % (b / 1e6) if b else ""))
            break
    rss = [(r["max_rss_kb"], r) for r in runs if r["tool"] == "trowel" and r["ok"] and r["max_rss_kb"]]
    if rss:
        worst = {}
        for kb, r in rss:
            key = r["workload"]
            if key not in worst or kb > worst[key][0]:
                worst[key] = (kb, r)
        over = {k: v for k, v in worst.items() if v[0] > RSS_TARGET_MB * 1024}
        out.append("- **peak RSS ≤ %d MB on every workload**: %s — worst per workload: %s." % (
            RSS_TARGET_MB, "MET" if not over else "NOT MET",
            ", ".join("%s %s MB (%s %s)" % (k, fmt_mb(v[0]), v[1]["fs"], v[1]["mode"])
                      for k, v in sorted(worst.items(), key=lambda kv: ORDER.index(kv[0])))))
    snaps, hashed = snapshot_stats(runs)
    if snaps and refs:
        # A RUN that touches one file leaves the root essentially unchanged: every W4 snapshot.
        ms = med([s["ms"] for s in snaps])
        floor = refs["find_stat_walk_s"] * 1000
        out.append("- **snapshot of an unchanged W4 root ≤ 2× a stat-only walk**: %s — median snapshot %.0f ms "
                   "(%d snapshots, max %d ms; %d files walked, %s bytes hashed per snapshot, medians) vs "
                   "`find -printf` %.0f ms → %.2f×." % (
                       "MET" if ms <= 2 * floor else "NOT MET", ms, len(snaps), max(s["ms"] for s in snaps),
                       med([s["files_walked"] for s in snaps]), "?" if not hashed else "%d" % med(hashed),
                       floor, ms / floor))
    return "\n".join(out)


def breakdown(runs):
    """Where trowel's time goes, per workload and mode, from the traced pass (ext4), next to the
    untraced median of the timed runs; and the traced build's peak RSS (a trace records file
    contents, which once made W3's traced build three times the untraced one's memory)."""
    head = ("| workload | mode | untraced s | traced s (engine) | base unpack s | RUN/COPY steps s | snapshots s (files walked)"
            " | layers written s (MB uncompressed) | push s | after push s | slowest step | traced MB |")
    lines = [head, "|" + "---|" * 12]
    for wl in ORDER:
        for mode in MODES:
            rs = [r for r in runs if r["tool"] in PROFILED and r["workload"] == wl and r["mode"] == mode
                  and r["fs"] == "ext4" and r["ok"] and r.get("trace")]
            if not rs:
                continue
            tr = [r["trace"] for r in rs]
            unpack = med([sum(u["ms"] or 0 for u in t["base_unpacked"]) for t in tr])
            snap = med([sum(s["ms"] or 0 for s in t["snapshots"]) for t in tr])
            walked = med([sum(s["files_walked"] or 0 for s in t["snapshots"]) for t in tr])
            layer = med([sum(x["ms"] or 0 for x in t["layers"]) for t in tr])
            mb = med([sum(x["uncompressed"] or 0 for x in t["layers"]) for t in tr])
            steps = med([sum(s["ms"] or 0 for s in t["steps"] if s["id"]["step"] > 0) for t in tr])
            push = med([sum(p["ms"] or 0 for p in t["pushes"]) for t in tr])
            tail = med([t.get("finish_tail_ms") for t in tr]) or 0
            slow = max(tr[0]["steps"], key=lambda s: s["ms"] or 0, default=None)
            untraced = med([r["wall_s"] for r in ok_runs(runs, "ext4", wl, "trowel", mode, flags_of(rs[0]))])
            lines.append("| %s | %s | %s | %s | %.2f | %.2f | %.2f (%d) | %.2f (%.1f) | %.2f | %.2f | %s | %s |" % (
                wl, mode, fmt_s(untraced), fmt_s(med([(t["total_ms"] or 0) / 1000 for t in tr])), unpack / 1000, steps / 1000,
                snap / 1000, walked, layer / 1000, mb / 1e6, push / 1000, tail / 1000,
                "—" if slow is None else "stage %d step %d: %.2f s (%s)" % (
                    slow["id"]["stage"], slow["id"]["step"], (slow["ms"] or 0) / 1000, slow["status"]),
                fmt_mb(max([r["max_rss_kb"] for r in rs if r.get("max_rss_kb")], default=None))))
    return "\n".join(lines)


def render(results_dir):
    runs, metas, ends, refs = load(results_dir)
    parts, summaries = [], {}
    m0 = metas[0] if metas else {}
    parts.append("Run `%s` (%s → %s).\n" % (os.path.basename(os.path.normpath(results_dir)), m0.get("started", "?"),
                                          ends[-1]["finished"] if ends else "unfinished"))
    parts.append("Versions: " + "; ".join("%s" % v for v in m0.get("versions", {}).values()) + ".\n")
    parts.append("Load (`uptime`) at the start of each table and at the end: " + "; ".join(
        "%s: %s" % (m["fs"], m["uptime"].split("load average:")[-1].strip()) for m in metas) +
        ("; end: " + ends[-1]["uptime"].split("load average:")[-1].strip() if ends else "") + ".\n")
    timed = [r for r in runs if r["tool"] not in PROFILED]
    fsets = [f for f in FLAGSET_TITLES if any(flags_of(r) == f for r in timed)]
    for fs in ("ext4", "tmpfs"):
        if not any(r["fs"] == fs for r in runs):
            continue
        desc = next((m.get("fs_desc") for m in metas if m["fs"] == fs and m.get("fs_desc")), "")
        for fset in fsets or [None]:
            t, s = table(runs, fs, fset)
            summaries[(fs, fset)] = s
            parts.append("### %s%s%s\n\n%s\n" % (fs, " — " + desc if desc else "",
                                                 " — " + FLAGSET_TITLES[fset] if fset else "", t))
            if any(r["tool"] == "trowel-ctr" and r["fs"] == fs for r in runs):
                parts.append("#### Container isolation, %s%s\n\n%s\n" % (
                    fs, " — " + FLAGSET_TITLES[fset] if fset else "", container_table(runs, fs, fset)))
            if any(r["tool"] == "trowel-rl" and r["fs"] == fs for r in runs):
                parts.append("#### Rootless vs chroot, %s%s\n\n%s\n" % (
                    fs, " — " + FLAGSET_TITLES[fset] if fset else "", rootless_table(runs, fs, fset)))
        if any(r["tool"] in ROOTLESS_TRACED and r["fs"] == fs and r.get("trace") for r in runs):
            parts.append("#### Rootless vs chroot, %s: where the time goes (`--trace`, a separate pass)\n\n%s\n" % (
                fs, rootless_breakdown(runs, fs)))
    if refs:
        w6 = refs.get("w6_runs_s")
        parts.append("Physical references (Debian minbase root, %d entries, %.0f MB, warm page cache, medians of 5): "
                     "stat-only walk %.3f s, read all %.2f s, sha256 all %.2f s, tar %.2f s, tar | gzip -6 %.2f s%s.\n" % (
                         refs["entries"], refs["bytes"] / 1e6, refs["find_stat_walk_s"], refs["read_all_s"],
                         refs["sha256_all_s"], refs["tar_s"], refs["tar_gzip6_s"],
                         "; W6's three RUN commands run by sh in a chroot of it (no builder) %.2f s" % w6 if w6 else ""))
    if any(r["tool"] in PEERS for r in runs):
        parts.append("### Targets\n\n" + targets(runs, summaries, refs) + "\n")
    if any(r["tool"] in PROFILED for r in runs):
        parts.append("### Where trowel's time goes (ext4, from `--trace` of a separate profiling pass)\n\n"
                     "*untraced s*: median wall time of the timed runs; *traced s (engine)*: the profiled "
                     "build's own duration (`build_finished.duration_ms`, process start-up and perf "
                     "excluded). Step times include the base unpack (done lazily by the first step that "
                     "needs the root) and, with `--trace`, the capture of changed text files' contents; "
                     "*after push*: from the last push/cache event to the end of the build (deleting the "
                     "work dir: build roots and blobs).\n\n"
                     + breakdown(runs) + "\n")
    failed = [r for r in runs if not r["ok"] or not str(r.get("verified", "")).startswith(("ok", "same", "skipped"))]
    if failed:
        parts.append("### Failed or unverified runs\n\n" + "\n".join(
            "- %s %s %s (%s) %s r%d: %s" % (r["fs"], r["workload"], r["tool"], flags_of(r), r["mode"], r["rep"],
                                            (r.get("error") or r.get("verified", "")).strip().splitlines()[-1][:300])
            for r in failed) + "\n")
    return "\n".join(parts)


def header(results_dir, metas, ends):
    m0 = metas[0] if metas else {}
    return ["Run `%s` (%s → %s).\n" % (os.path.basename(os.path.normpath(results_dir)), m0.get("started", "?"),
                                      ends[-1]["finished"] if ends else "unfinished"),
            "Versions: " + "; ".join("%s" % v for v in m0.get("versions", {}).values()) + ".\n",
            "Load (`uptime`) at the start and at the end: " + "; ".join(
                "%s: %s" % (m["fs"], m["uptime"].split("load average:")[-1].strip()) for m in metas) +
            ("; end: " + ends[-1]["uptime"].split("load average:")[-1].strip() if ends else "") + ".\n"]


def failures(runs):
    failed = [r for r in runs if not r["ok"] or not str(r.get("verified", "")).startswith(("ok", "same", "skipped"))]
    if not failed:
        return []
    return ["### Failed or unverified runs\n\n" + "\n".join(
        "- %s %s %s %s r%d: %s" % (r["fs"], r["workload"], r["tool"], r["mode"], r["rep"],
                                   ((r.get("error") or r.get("verified", "")).strip().splitlines() or ["?"])[-1][:300])
        for r in failed) + "\n"]


def render_multi(results_dir):
    """The two-platform run: per file system its table (single-platform twins included, measured in
    the same run), what building the second platform costs each tool, and the indexes pushed."""
    runs, metas, ends, _ = load(results_dir)
    parts = header(results_dir, metas, ends)
    for fs in ("ext4", "tmpfs"):
        if not any(r["fs"] == fs for r in runs):
            continue
        t, summary = table(runs, fs)
        desc = next((m.get("fs_desc") for m in metas if m["fs"] == fs and m.get("fs_desc")), "")
        parts.append("### %s%s\n\n%s\n" % (fs, " — " + desc if desc else "", t))
        tools = sorted({r["tool"] for r in runs if r["fs"] == fs}, key=lambda x: (x != "trowel", x))
        lines = []
        for wl, twin in MULTI.items():
            for mode in MODES:
                if (wl, mode) not in summary or (twin, mode) not in summary:
                    continue
                costs = []
                for tool in tools:
                    two, one = summary[(wl, mode)]["walls"].get(tool), summary[(twin, mode)]["walls"].get(tool)
                    if two is not None and one:
                        costs.append("%s %.2f s → %.2f s (%.1f×)" % (tool, one, two, two / one))
                if costs:
                    lines.append("- %s %s (amd64 alone → amd64 + arm64): %s" % (twin, mode, "; ".join(costs)))
        if lines:
            parts.append("Two platforms against one (medians of this run):\n\n" + "\n".join(lines) + "\n")
        kinds = {}
        for r in runs:
            if r["fs"] == fs and r.get("index_media_type"):
                kinds.setdefault(r["tool"], set()).add(r["index_media_type"])
        if kinds:
            parts.append("Indexes pushed: " + "; ".join("%s `%s`" % (tool, "`, `".join(sorted(k)))
                                                       for tool, k in sorted(kinds.items())) + ".\n")
    parts += failures(runs)
    return "\n".join(parts)


def main():
    results_dir = sys.argv[1]
    multi = "--multi-platform" in sys.argv[2:]
    args = [a for a in sys.argv[2:] if a != "--multi-platform"]
    text = render_multi(results_dir) if multi else render(results_dir)
    section = "multiplatform" if multi else "results"
    if len(args) > 1 and args[0] == "--readme":
        path = args[1]
        with open(path) as f:
            readme = f.read()
        new, n = re.subn(r"(<!-- %s:start -->\n).*?(<!-- %s:end -->)" % (section, section),
                         lambda m: m.group(1) + text + "\n" + m.group(2), readme, flags=re.S)
        if n != 1:
            sys.exit("%s has no <!-- %s:start --> … <!-- %s:end --> section" % (path, section, section))
        with open(path, "w") as f:
            f.write(new)
    else:
        print(text)


if __name__ == "__main__":
    main()
