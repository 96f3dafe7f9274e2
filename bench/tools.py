"""How each builder is run, with which flags in which mode, and where it keeps its state.

Modes (the same meaning for every tool):
  cold     layer caching on, every cache empty (fresh state dir, fresh cache repository, fresh
           destination repository): the first CI run of a project.
  warm     the very same command again right after `cold` (same state, same cache repository,
           same destination): an unchanged rebuild.
  nocache  layer caching off, fresh state, fresh destination.

Each tool's state lives under STATE (on the file system under test). A build is one or more
phases (buildah: build, then push); each phase runs under /usr/bin/time -v.

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


def wipe(path):
    if os.path.exists(path):
        _umount_under(path)
        shutil.rmtree(path)


class Run:
    """One build: the identity of the run and where everything goes."""

    def __init__(self, tool, workload, mode, rep, fs, registry, ctx, dockerfile, state, out_dir, platforms=()):
        self.tool, self.workload, self.mode, self.rep, self.fs = tool, workload, mode, rep, fs
        self.platforms = tuple(platforms)
        self.registry, self.ctx, self.dockerfile = registry, ctx, dockerfile
        self.state, self.out_dir = state, out_dir
        group = "cache" if mode in ("cold", "warm") else "nocache"
        base = "%s-%s-%s-%s-r%d" % (fs, workload.lower(), tool, group, rep)
        self.destination = "%s/bench/%s:latest" % (registry, base)
        self.cache_repo = "%s/bench-cache/%s" % (registry, base)
        self.build_arg = "BASE_REGISTRY=%s" % registry
        self.fresh = mode in ("cold", "nocache")
        self.caching = mode in ("cold", "warm")


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
        self.name = "trowel-perf" if perf else "trowel-trace" if trace else "trowel"

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.strip()

    def flags(self, mode):
        common = "--isolation chroot --work-dir STATE/work" + (" --trace FILE" if self.trace else "")
        common += " [--platform linux/amd64,linux/arm64]"
        if mode == "nocache":
            return common
        return common + " --cache=true --cache-repo REG/bench-cache/... --cache-copy-layers=true --cache-dir STATE/cache-dir"

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
            argv += ["--cache=true", "--cache-repo", run.cache_repo, "--cache-copy-layers=true",
                     "--cache-dir", os.path.join(run.state, "cache-dir")]
        return [("build+push", argv, {})]

    def cleanup(self, run):
        wipe(run.state)


class Buildah:
    name = "buildah"
    multi_platform = True

    def version(self):
        return subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()

    def flags(self, mode):
        layers = "--layers=false" if mode == "nocache" else "--layers=true"
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
    """kaniko's executor in a crun container (it builds in / of its own container): a fresh root
    file system per build holding only /kaniko, the context bind-mounted read-only at /workspace,
    the host network so it reaches the registry on 127.0.0.1. Its warm mode is its registry cache,
    as in CI where every kaniko pod starts empty."""

    name = "kaniko"
    multi_platform = False  # one platform per run: --custom-platform

    def __init__(self, executor):
        self.executor = executor

    def version(self):
        p = subprocess.run([self.executor, "version"], capture_output=True, text=True)
        return "kaniko " + (p.stdout.strip() or p.stderr.strip())

    def flags(self, mode):
        common = "--insecure --insecure-pull --context dir:///workspace"
        if mode == "nocache":
            return common
        return common + " --cache=true --cache-repo REG/bench-cache/... --cache-copy-layers --cache-run-layers"

    def phases(self, run):
        wipe(run.state)
        bundle = os.path.join(run.state, "bundle")
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(os.path.join(rootfs, "kaniko", "ssl", "certs"))
        for d in ("workspace", "bench", "proc", "dev", "sys", "tmp", "etc", "cache"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy2(self.executor, os.path.join(rootfs, "kaniko", "executor"))
        shutil.copy2("/etc/ssl/certs/ca-certificates.crt", os.path.join(rootfs, "kaniko", "ssl", "certs"))
        shutil.copy2("/etc/resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))
        args = ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "/bench/Dockerfile",
                "--destination", run.destination, "--build-arg", run.build_arg,
                "--insecure", "--insecure-pull", "--skip-tls-verify", "--skip-tls-verify-pull"]
        if run.caching:
            args += ["--cache=true", "--cache-repo", run.cache_repo, "--cache-copy-layers",
                     "--cache-run-layers", "--cache-dir", "/cache"]
        subprocess.run(["crun", "spec", "-b", bundle], check=True, capture_output=True)
        spec_path = os.path.join(bundle, "config.json")
        with open(spec_path) as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        spec["process"]["env"] = ["PATH=/usr/local/bin:/kaniko:/usr/bin:/bin", "HOME=/root",
                                  "SSL_CERT_DIR=/kaniko/ssl/certs", "DOCKER_CONFIG=/kaniko/.docker/",
                                  "container=oci"]
        spec["root"] = {"path": "rootfs", "readonly": False}
        spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
        caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
                "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                "CAP_MKNOD", "CAP_AUDIT_WRITE"]
        spec["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        spec["mounts"] += [
            {"destination": "/workspace", "type": "bind", "source": run.ctx, "options": ["rbind", "ro"]},
            {"destination": "/bench", "type": "bind", "source": os.path.dirname(run.dockerfile),
             "options": ["rbind", "ro"]},
        ]
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        cid = "bench-kaniko-%d" % os.getpid()
        return [("build+push", ["crun", "run", "--bundle", bundle, cid], {})]

    def cleanup(self, run):
        wipe(run.state)
