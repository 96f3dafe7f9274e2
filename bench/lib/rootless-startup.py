#!/usr/bin/env python3
"""The fixed cost of rootless isolation: what entering its user namespace adds to every build.

Issue 19 wants rootless within 10 % of chroot; a warm build takes 30-70 ms, so a constant of a
few milliseconds decides those cells. This measures the constant alone: a build with nothing to
pull, run or push (`FROM scratch`, a LABEL, `--no-push`) as root with `--isolation chroot` and as
the ordinary user with `--isolation rootless`, alternating, and `trowel --version` both ways
(what starting the binary as each costs by itself, which should be the same). Both are started
the way bench/tools.py starts trowel-rl and, next to it, trowel since 2026-12-03: a clean
environment, and the ids (the user's, or root's own) set in this script's forked child
(tools.AsUser), with no launcher exec'd; until then the user's side went through setpriv and
`env -i`, 1.6 ms more than root's. Run as root, after the bench has made the user
(tools.rootless_user):

    bench/lib/rootless-startup.py TROWEL_BINARY [PAIRS] [--strace] [--base OLD_BINARY] [--raw FILE]

--strace also runs the rootless build once under `strace -f -ttt` and prints its timeline (fork,
unshare, newuidmap, newgidmap, the re-execution, exit); strace slows every step, so only the
order and the proportions mean something there. --base OLD_BINARY adds the same two builds with
another trowel (the one before a change) to every round, so old and new alternate too, and
prints the per-round differences new - old; --raw FILE writes every time measured (JSON: command
name -> list of ms, in round order) with the load before and after.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tools  # noqa: E402

PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def main():
    argv = sys.argv[1:]
    base = raw = None
    for flag in ("--base", "--raw"):
        if flag in argv:
            i = argv.index(flag)
            value = argv[i + 1]
            del argv[i:i + 2]
            if flag == "--base":
                base = os.path.abspath(value)
            else:
                raw = value
    args = [a for a in argv if a != "--strace"]
    if not args:
        sys.exit(__doc__)
    binary, pairs = os.path.abspath(args[0]), int(args[1]) if len(args) > 1 else 30
    uid, gid = tools.rootless_user()
    top = tempfile.mkdtemp(prefix="trowel-rl-startup-", dir="/var/tmp")
    try:
        os.chmod(top, 0o755)
        for d in ("ctx", "home", "tmp", "work", "root-work"):
            os.makedirs(os.path.join(top, d))
        with open(os.path.join(top, "ctx", "Dockerfile"), "w") as f:
            f.write("FROM scratch\nLABEL a=b\n")
        for d in ("home", "tmp", "work"):
            os.chown(os.path.join(top, d), uid, gid)
        user = tools.AsUser(tools.ROOTLESS_USER, uid, gid)
        as_user = {"env": {"HOME": "%s/home" % top, "USER": tools.ROOTLESS_USER, "PATH": PATH,
                           "TMPDIR": "%s/tmp" % top},
                   "user": user.uid, "group": user.gid, "extra_groups": user.groups}
        # Root through the same forked child (ids set, to its own): Python forks instead of
        # vforking for either, so both pay the same launch (tools.AsUser).
        as_root = {"env": {"HOME": "/root", "PATH": PATH, "TMPDIR": "%s/root-work" % top},
                   "user": 0, "group": 0, "extra_groups": []}

        def build(isolation, work, binary=binary):
            return [binary, "build", "--context", os.path.join(top, "ctx"), "--no-push", "--isolation", isolation,
                    "--work-dir", os.path.join(top, work), "--log-format", "text"]

        cmds = {"build, chroot (root)": (build("chroot", "root-work"), as_root),
                "build, rootless (user)": (build("rootless", "work"), as_user),
                "--version (root)": ([binary, "--version"], as_root),
                "--version (user)": ([binary, "--version"], as_user)}
        if base:
            cmds["build, chroot (root), base"] = (build("chroot", "root-work", base), as_root)
            cmds["build, rootless (user), base"] = (build("rootless", "work", base), as_user)
        load_before = os.getloadavg()
        times = {k: [] for k in cmds}
        for _ in range(pairs):
            for name, (argv, kwargs) in cmds.items():
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, **kwargs)
                times[name].append((time.monotonic() - t0) * 1000)
                if p.returncode != 0:
                    sys.exit("%s failed: %s" % (name, p.stderr.decode(errors="replace")[-800:]))
        load_after = os.getloadavg()
        print("load (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f" % (load_before + load_after))
        for name, v in times.items():
            print("%-36s median %5.1f ms  (min %5.1f, max %5.1f; n=%d)" % (
                name, statistics.median(v), min(v), max(v), len(v)))
        diffs = [r - c for r, c in zip(times["build, rootless (user)"], times["build, chroot (root)"])]
        print("rootless - chroot, per pair: median %.1f ms" % statistics.median(diffs))
        if base:
            for what in ("rootless (user)", "chroot (root)"):
                d = [n - o for n, o in zip(times["build, %s" % what], times["build, %s, base" % what])]
                print("%s: this binary - base, per round: median %.1f ms" % (what, statistics.median(d)))
            d = [r - c for r, c in zip(times["build, rootless (user), base"], times["build, chroot (root), base"])]
            print("base: rootless - chroot, per pair: median %.1f ms" % statistics.median(d))
        if raw:
            with open(raw, "w") as f:
                json.dump({"binary": binary, "base": base, "load_before": load_before, "load_after": load_after,
                           "ms": times}, f, indent=1)
        if "--strace" in sys.argv and shutil.which("strace"):
            out = os.path.join(top, "strace.txt")
            # strace stays root (a setuid helper traced by its user would not be setuid), so the
            # user is entered by setpriv and env under it.
            argv, kwargs = cmds["build, rootless (user)"]
            launcher = ["/usr/bin/setpriv", "--reuid", str(uid), "--regid", str(gid), "--init-groups", "--",
                        "/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in kwargs["env"].items()]
            subprocess.run(["strace", "-f", "-ttt", "-o", out] + launcher + argv, capture_output=True)
            lines = open(out).read().splitlines()
            t0 = float(lines[0].split()[1])
            keep = ("execve(", "unshare(", "exit_group(", "+++ exited")
            for line in lines:
                if any(k in line for k in keep) and "resumed" not in line:
                    pid, ts, rest = line.split(None, 2)
                    print("%7.1f ms  pid %s  %s" % ((float(ts) - t0) * 1000, pid, rest[:90]))
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    main()
