"""How each builder is run, with which flags in which mode, and where it keeps its state.

Modes (the same meaning for every tool):
  cold     layer caching on, every cache empty (fresh state dir, fresh cache repository, fresh
           destination repository): the first CI run of a project.
  warm     the very same command again right after `cold` (same state, same cache repository,
           same destination): an unchanged rebuild.
  nocache  layer caching off, fresh state, fresh destination.

  edit     (W6 only) one source file of the context changed, then the same command again with
           the state of the warm run: a CI rebuild after a one-line commit.
  fresh    after the chain's other cached builds: every tool's local state wiped, the cache
           repository and the destination kept, the same command again: what a GitLab job in a
           fresh pod does. For kaniko that is its usual warm run (it never keeps local state);
           buildah 1.28 has `--cache-from/--cache-to`, so in a run with this mode buildah's
           cached builds (cold, warm, edit, fresh) all use its own remote cache repository
           (`--cache-from R --cache-to R`), as it would be set up for such CI.

Flag sets (FLAGSETS), both reported:
  kaniko   kaniko's usual flags, as most GitLab jobs run it: `--cache=true --cache-repo REPO`, no
           `--cache-copy-layers` (kaniko and trowel). The headline.
  best     each tool's fastest caching flags: kaniko and trowel with `--cache-copy-layers=true`,
           kaniko also `--cache-run-layers`.
buildah has no such flags (`--layers` caches every step in its local storage): it is the same in
both sets, so it runs once per repetition and workload and both sets compare against that run.

Each tool's whole state lives under STATE (on the file system under test): trowel's --work-dir
and --cache-dir (a kaniko pod has its default /cache; trowel's equivalent is given explicitly),
buildah's --root, --runroot and TMPDIR, kaniko's container root (its / with /kaniko). A build is
one or more phases (buildah: build, then push); each phase runs under /usr/bin/time -v.

A multi-platform workload (Run.platforms not empty) is one command per tool building every
platform and pushing one image index: trowel `build --platform A,B`; buildah `build --platform A,B
--manifest LIST` then `manifest push --all`. kaniko builds one platform per run, so it has no
multi-platform cell.
"""

import json
import os
import shutil
import subprocess


def _umount_under(path):
    """Unmounts whatever a tool left mounted below path (buildah's overlay mounts), deepest first."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for p in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


def _trowel_cache_flags(flagset):
    """The cache flags trowel gets in every isolation (as printed in the tables)."""
    return " --cache=true --cache-repo REG/bench-cache/... --cache-dir STATE/cache-dir" + (
        " --cache-copy-layers=true" if flagset == "best" else "")


def wipe(path):
    if os.path.exists(path):
        _umount_under(path)
        shutil.rmtree(path)


class Run:
    """One build: the identity of the run and where everything goes."""

    def __init__(self, tool, workload, mode, rep, fs, registry, ctx, dockerfile, state, out_dir, platforms=(),
                 flagset="kaniko"):
        self.tool, self.workload, self.mode, self.rep, self.fs = tool, workload, mode, rep, fs
        self.flagset = flagset
        self.platforms = tuple(platforms)
        self.registry, self.ctx, self.dockerfile = registry, ctx, dockerfile
        self.state, self.out_dir = state, out_dir
        group = "cache" if mode in CACHED_MODES else "nocache"
        base = "%s-%s-%s-%s-%s-r%d" % (fs, workload.lower(), tool, flagset, group, rep)
        self.destination = "%s/bench/%s:latest" % (registry, base)
        self.cache_repo = "%s/bench-cache/%s" % (registry, base)
        self.build_arg = "BASE_REGISTRY=%s" % registry
        # A fresh pod: no local state (the cache repository and the destination are kept).
        self.fresh = mode in ("cold", "nocache", "fresh")
        self.caching = mode in CACHED_MODES
        self.copy_layers = flagset == "best"


CRUN_RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "crun-run.sh")

# Modes that build with layer caching on; warm and edit reuse the state of the cold run before
# them, fresh only its cache repository and destination.
CACHED_MODES = ("cold", "warm", "edit", "fresh")
FLAGSETS = ("kaniko", "best")


class Trowel:
    """trowel as CI runs it. With trace=True ("trowel-trace") it also records --trace FILE: the
    profiling pass. Tracing is kept out of the timed comparison because it is not free: it records
    the before/after content of small text files a step changed, and when a step modifies or
    deletes a base image file it first indexes the base layers' text files."""

    multi_platform = True

    def __init__(self, binary, trace=False, perf=False):
        self.binary = binary
        self.trace = trace or perf
        self.perf = perf
        # Started as root through AsUser, as trowel-rl is started as its user (see AsUser); set
        # by bench.py when trowel-rl is in the run.
        self.same_launch = False
        self.name = "trowel-perf" if perf else "trowel-trace" if trace else "trowel"

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip()

    def flags(self, mode, flagset="kaniko"):
        common = "--isolation chroot --work-dir STATE/work" + (" --trace FILE" if self.trace else "")
        common += " [--platform linux/amd64,linux/arm64]"
        if mode == "nocache":
            return common
        return common + _trowel_cache_flags(flagset)

    def phases(self, run):
        if run.fresh:
            wipe(run.state)
        os.makedirs(os.path.join(run.state, "work"), exist_ok=True)
        os.makedirs(os.path.join(run.state, "cache-dir"), exist_ok=True)
        argv = [self.binary, "build", "--context", run.ctx, "--dockerfile", run.dockerfile,
                "--destination", run.destination, "--build-arg", run.build_arg,
                "--isolation", "chroot", "--work-dir", os.path.join(run.state, "work"), "--log-format", "text"]
        if run.platforms:
            argv += ["--platform", ",".join(run.platforms)]
        if self.trace:
            argv += ["--trace", os.path.join(run.out_dir, "trace.jsonl")]
        if self.perf:
            # Sampled on-CPU profile of trowel and its children (RUN's shell shows up as such).
            argv = ["perf", "record", "-q", "-F", "499", "-g", "-o", os.path.join(run.out_dir, "perf.data"), "--"] + argv
        if run.caching:
            argv += ["--cache=true", "--cache-repo", run.cache_repo, "--cache-dir", os.path.join(run.state, "cache-dir")]
            if run.copy_layers:
                argv += ["--cache-copy-layers=true"]
        if self.same_launch:
            return [("build+push", argv, {}, AsUser("root", 0, 0, clean_env=False))]
        return [("build+push", argv, {})]

    def cleanup(self, run):
        wipe(run.state)


class TrowelContainer:
    """trowel with container isolation, run the way kaniko is run here (see Kaniko): its own image's
    files (scripts/image-context.sh --no-git: the binary and its libraries under /trowel) as the
    root of a fresh crun container per build, under STATE on the file system under test, the
    context read-only at /workspace, the Dockerfile's directory at /bench, the host network. It
    unpacks the base into its own / (the unpacked-layer store is not used there: / is the root),
    runs RUN there and snapshots it, as kaniko does. Its cache dir is an empty volume at /cache
    (STATE/cache-dir, bind-mounted like a pod's emptyDir); like kaniko's, it starts empty in every
    build (warm and edit use the registry cache only, as a fresh CI pod does). Capabilities: the
    same list as kaniko's container here."""

    name = "trowel-ctr"
    multi_platform = False

    def __init__(self, binary, image_context):
        """image_context: the `trowel/` directory of scripts/image-context.sh's output."""
        self.binary = binary
        self.image_context = image_context

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip() + \
            " (container isolation)"

    def flags(self, mode, flagset="kaniko"):
        common = "--isolation container --context /workspace (in a crun container, fresh per build)"
        if mode == "nocache":
            return common
        return common + " --cache=true --cache-repo REG/bench-cache/... --cache-dir /cache (empty)" + (
            " --cache-copy-layers=true" if flagset == "best" else "")

    def phases(self, run):
        wipe(run.state)
        bundle = os.path.join(run.state, "bundle")
        rootfs = os.path.join(bundle, "rootfs")
        shutil.copytree(self.image_context, os.path.join(rootfs, "trowel"), symlinks=True)
        for d in ("workspace", "bench", "proc", "dev", "sys", "tmp", "etc", "cache"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        cache = os.path.join(run.state, "cache-dir")
        os.makedirs(cache)
        shutil.copy2("/etc/resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))
        args = ["/trowel/trowel", "build", "--isolation", "container", "--context", "/workspace",
                "--dockerfile", "/bench/Dockerfile", "--destination", run.destination, "--build-arg", run.build_arg,
                "--log-format", "text"]
        if run.caching:
            args += ["--cache=true", "--cache-repo", run.cache_repo, "--cache-dir", "/cache"]
            if run.copy_layers:
                args += ["--cache-copy-layers=true"]
        env = ["PATH=/usr/local/bin:/trowel", "HOME=/root", "DOCKER_CONFIG=/trowel/.docker/",
               "SSL_CERT_FILE=/trowel/ssl/certs/ca-certificates.crt", "TROWEL_DIR=/trowel", "container=oci"]
        extra_mounts = [{"destination": "/cache", "type": "bind", "source": cache, "options": ["rbind", "rw"]}]
        return [("build+push", _crun_bundle(bundle, args, env, run, extra_mounts), {})]

    def cleanup(self, run):
        wipe(run.state)



# The ordinary user of rootless isolation: the test harness's (tests/common/rootless.rs), made the
# same way when missing, with the same lock, so a bench and a test run on one machine agree.
ROOTLESS_USER = "trowel-rl"
ROOTLESS_RANGE = 65536
ROOTLESS_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def rootless_user(name=ROOTLESS_USER):
    """(uid, gid) of `name`, made first if missing (idempotent): `useradd --user-group` and a
    subordinate uid/gid range in /etc/subuid and /etc/subgid. Debian's useradd usually gives the
    user a range itself (SUB_UID_COUNT in login.defs), which is kept; when it has none, one of
    ROOTLESS_RANGE ids is added after every range there and above 1,000,000 (as the test harness
    does)."""
    import fcntl
    import pwd
    with open("/run/trowel-rootless-users.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--home-dir", "/var/tmp/%s-home" % name, "--shell", "/bin/sh",
                            "--user-group", name], check=True)
            pw = pwd.getpwnam(name)
        for path in ("/etc/subuid", "/etc/subgid"):
            text = open(path).read() if os.path.exists(path) else ""
            fields = [line.split(":") for line in text.splitlines() if line.count(":") == 2]
            if any(f[0] in (name, str(pw.pw_uid)) for f in fields):
                continue
            end = max([int(f[1]) + int(f[2]) for f in fields if f[1].isdigit() and f[2].isdigit()], default=0)
            with open(path, "a") as f:
                if text and not text.endswith("\n"):
                    f.write("\n")
                f.write("%s:%d:%d\n" % (name, max(end, 1000000), ROOTLESS_RANGE))
    return pw.pw_uid, pw.pw_gid


class AsUser:
    """Who a phase runs as (bench.run_phases): uid, gid and supplementary groups, as `setpriv
    --reuid --regid --init-groups` would set them, but set by the bench's own forked child, so
    no launcher is exec'd and timed with the tool. With clean_env the phase gets exactly its own
    environment (`env -i`), else the bench's with the phase's added.

    Setting ids forces Python to fork() where it would otherwise vfork(), about 1.3 ms more here
    (bench/README, "Rootless vs chroot"): so a run comparing rootless with chroot starts the
    chroot column (root) this way too (Trowel.same_launch), and both pay the same launch."""

    def __init__(self, name, uid, gid, clean_env=True):
        self.uid, self.gid, self.clean_env = uid, gid, clean_env
        self.groups = [g for g in os.getgrouplist(name, gid) if g != gid]


class TrowelRootless:
    """trowel with `--isolation rootless`, run as an ordinary user (ROOTLESS_USER, with a
    subordinate range) with that user's ids and groups and a clean environment (HOME, USER,
    LOGNAME, PATH, TMPDIR), as `setpriv --reuid --regid --init-groups env -i` would run it (and
    tests/common/rootless.rs does), but with the ids set in the bench's forked child: until
    2026-12-03 the bench exec'd setpriv and env, ~1.6 ms a build that the chroot column (root,
    started directly) did not pay (bench/README, "Rootless vs chroot"). Its whole state —
    work dir, cache dir, HOME (so `~/.cache/trowel/mounts`) and TMPDIR — is under STATE on the file
    system under test and owned by the user; the flags are Trowel's. The bench runs as root, so
    the wipe between chains (files owned by the user's subordinate ids included) is root's. With
    trace=True ("trowel-rl-trace") it also records --trace FILE for the breakdown: the run's
    directory is given to the user so it may write the trace there."""

    multi_platform = True

    def __init__(self, binary, trace=False):
        self.binary = binary
        self.trace = trace
        self.name = "trowel-rl-trace" if trace else "trowel-rl"
        self.uid, self.gid = rootless_user()

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip() + \
            " (rootless isolation, as %s)" % ROOTLESS_USER

    def flags(self, mode, flagset="kaniko"):
        common = ("as %s, its groups and a clean environment (HOME=STATE/home TMPDIR=STATE/tmp): trowel build "
                  "--isolation rootless --work-dir STATE/work" % ROOTLESS_USER)
        common += (" --trace FILE" if self.trace else "") + " [--platform linux/amd64,linux/arm64]"
        if mode == "nocache":
            return common
        return common + _trowel_cache_flags(flagset)

    def phases(self, run):
        if run.fresh:
            wipe(run.state)
        for d in ("work", "cache-dir", "home", "tmp"):
            os.makedirs(os.path.join(run.state, d), exist_ok=True)
        # Only the top directories: the state of a warm build is the user's already, and a
        # recursive chown of its cache would be time the chroot column does not spend.
        for d in ("", "work", "cache-dir", "home", "tmp"):
            os.chown(os.path.join(run.state, d), self.uid, self.gid)
        env = {"HOME": os.path.join(run.state, "home"), "USER": ROOTLESS_USER, "LOGNAME": ROOTLESS_USER,
               "PATH": ROOTLESS_PATH, "TMPDIR": os.path.join(run.state, "tmp")}
        argv = [self.binary, "build", "--context", run.ctx, "--dockerfile", run.dockerfile,
                "--destination", run.destination, "--build-arg", run.build_arg,
                "--isolation", "rootless", "--work-dir", os.path.join(run.state, "work"), "--log-format", "text"]
        if run.platforms:
            argv += ["--platform", ",".join(run.platforms)]
        if self.trace:
            os.chown(run.out_dir, self.uid, self.gid)
            argv += ["--trace", os.path.join(run.out_dir, "trace.jsonl")]
        if run.caching:
            argv += ["--cache=true", "--cache-repo", run.cache_repo, "--cache-dir", os.path.join(run.state, "cache-dir")]
            if run.copy_layers:
                argv += ["--cache-copy-layers=true"]
        return [("build+push", argv, env, AsUser(ROOTLESS_USER, self.uid, self.gid))]

    def cleanup(self, run):
        wipe(run.state)

# The capabilities kaniko's container gets here (and trowel's in container isolation): what RUN
# needs to change owners and run as other users, as in a pod with kaniko's usual privileges.
CONTAINER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
                  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                  "CAP_MKNOD", "CAP_AUDIT_WRITE"]


def _crun_bundle(bundle, args, env, run, extra_mounts=()):
    """Writes the OCI config of a builder's container (crun's default spec, the host network, no
    cgroup namespace or resources, CONTAINER_CAPS, the context at /workspace and the Dockerfile's
    directory at /bench, both read-only) and returns the command that runs it."""
    subprocess.run(["crun", "spec", "-b", bundle], check=True, capture_output=True)
    spec_path = os.path.join(bundle, "config.json")
    with open(spec_path) as f:
        spec = json.load(f)
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["process"]["env"] = env
    spec["process"]["cwd"] = "/"
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] not in ("network", "cgroup")]
    spec["linux"].pop("resources", None)
    spec["process"]["capabilities"] = {k: CONTAINER_CAPS for k in ("bounding", "effective", "permitted")}
    spec["mounts"] += [
        {"destination": "/workspace", "type": "bind", "source": run.ctx, "options": ["rbind", "ro"]},
        {"destination": "/bench", "type": "bind", "source": os.path.dirname(run.dockerfile),
         "options": ["rbind", "ro"]},
    ] + list(extra_mounts)
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    cid = "bench-%s-%d" % (run.tool, os.getpid())
    subprocess.run(["crun", "delete", "-f", cid], capture_output=True)
    # As the tests run crun (scripts/crun-run.sh): no cgroup manager, the hybrid cgroup2
    # mount hidden in a private mount namespace. A CI pod's limits are not what is measured.
    return [CRUN_RUN, bundle, cid]


class Buildah:
    name = "buildah"
    multi_platform = True

    def __init__(self, remote_cache=False):
        # With the fresh mode: its layers also go to (and come from) a cache repository.
        self.remote_cache = remote_cache

    def version(self):
        return subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()

    def flags(self, mode, flagset="kaniko"):
        layers = "--layers=false" if mode == "nocache" else "--layers=true"
        if self.remote_cache and mode != "nocache":
            layers += " --cache-from REG/bench-cache/... --cache-to REG/bench-cache/..."
        return ("buildah --root STATE/root --runroot STATE/runroot --storage-driver overlay build "
                "--isolation chroot --tls-verify=false %s (TMPDIR=STATE/tmp); buildah push --tls-verify=false "
                "[several platforms: build --platform linux/amd64,linux/arm64 --manifest LIST; "
                "manifest push --all --tls-verify=false]" % layers)

    def _global(self, run):
        return ["buildah", "--root", os.path.join(run.state, "root"),
                "--runroot", os.path.join(run.state, "runroot"), "--storage-driver", "overlay"]

    def phases(self, run):
        if run.fresh:
            self.cleanup(run)
        os.makedirs(os.path.join(run.state, "tmp"), exist_ok=True)
        env = {"TMPDIR": os.path.join(run.state, "tmp")}
        tag = "localhost/bench-%s:latest" % run.workload.lower()
        build = self._global(run) + ["build", "--isolation", "chroot", "--tls-verify=false",
                                     "--layers=%s" % ("true" if run.caching else "false"),
                                     "--build-arg", run.build_arg, "-f", run.dockerfile]
        if self.remote_cache and run.caching:
            build += ["--cache-from", run.cache_repo, "--cache-to", run.cache_repo]
        if not run.platforms:
            build += ["-t", tag, run.ctx]
            push = self._global(run) + ["push", "--tls-verify=false", tag, "docker://" + run.destination]
            return [("build", build, env), ("push", push, env)]
        # --manifest adds each platform's image to the list LIST (creating it). A warm run starts
        # without the list the cold run made (its images and layers stay in the storage): the
        # list is then made anew, as `-t` re-points a tag, instead of growing a second entry per
        # platform.
        if not run.fresh:
            subprocess.run(self._global(run) + ["manifest", "rm", tag], capture_output=True, env=dict(os.environ, **env))
        build += ["--platform", ",".join(run.platforms), "--manifest", tag, run.ctx]
        push = self._global(run) + ["manifest", "push", "--all", "--tls-verify=false", tag,
                                    "docker://" + run.destination]
        return [("build", build, env), ("manifest-push", push, env)]

    def cleanup(self, run):
        if os.path.isdir(os.path.join(run.state, "root")):
            for sub in (["rm", "--all"], ["rmi", "--all", "--force"]):
                subprocess.run(self._global(run) + sub, capture_output=True)
        wipe(run.state)


class Kaniko:
    """kaniko's executor in a crun container, as in a CI pod: it builds in / of its own container
    (it unpacks the base there and snapshots it), so it gets a fresh root file system per build,
    under STATE on the file system under test, holding only /kaniko (the executor, certificates)
    and /cache (kaniko's default base-image cache dir, empty). The context is bind-mounted
    read-only at /workspace and the Dockerfile's directory at /bench; kaniko leaves mount points
    out of its snapshots. The container shares the host network to reach the registry on
    127.0.0.1. Its warm and edit modes are its registry cache, as in CI where every kaniko pod
    starts empty.

    KANIKO_EXECUTOR is a static executor built from kaniko's public source (bench/README.md says
    how); nothing of kaniko is in this repository."""

    name = "kaniko"
    multi_platform = False  # one platform per run: --custom-platform

    def __init__(self, executor):
        self.executor = executor

    def version(self):
        p = subprocess.run([self.executor, "version"], capture_output=True, text=True)
        return "kaniko " + (p.stdout.strip() or p.stderr.strip())

    def flags(self, mode, flagset="kaniko"):
        common = "--context dir:///workspace --insecure --insecure-pull --skip-tls-verify --skip-tls-verify-pull"
        if mode == "nocache":
            return common
        return common + " --cache=true --cache-repo REG/bench-cache/..." + (
            " --cache-copy-layers --cache-run-layers" if flagset == "best" else "")

    def phases(self, run):
        wipe(run.state)
        bundle = os.path.join(run.state, "bundle")
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(os.path.join(rootfs, "kaniko", "ssl", "certs"))
        os.makedirs(os.path.join(rootfs, "kaniko", ".docker"))
        for d in ("workspace", "bench", "proc", "dev", "sys", "tmp", "etc", "cache"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy2(self.executor, os.path.join(rootfs, "kaniko", "executor"))
        shutil.copy2("/etc/ssl/certs/ca-certificates.crt", os.path.join(rootfs, "kaniko", "ssl", "certs"))
        shutil.copy2("/etc/resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))
        with open(os.path.join(rootfs, "etc", "nsswitch.conf"), "w") as f:
            f.write("hosts: files dns\n")  # as kaniko's image has it
        args = ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "/bench/Dockerfile",
                "--destination", run.destination, "--build-arg", run.build_arg,
                "--insecure", "--insecure-pull", "--skip-tls-verify", "--skip-tls-verify-pull"]
        if run.caching:
            args += ["--cache=true", "--cache-repo", run.cache_repo]
            if run.copy_layers:
                args += ["--cache-copy-layers", "--cache-run-layers"]
        env = ["PATH=/usr/local/bin:/kaniko:/usr/bin:/bin", "HOME=/root", "USER=root",
               "SSL_CERT_DIR=/kaniko/ssl/certs", "DOCKER_CONFIG=/kaniko/.docker/", "container=oci"]
        return [("build+push", _crun_bundle(bundle, args, env, run), {})]

    def cleanup(self, run):
        wipe(run.state)
