"""Checks a pushed image with independent tools: skopeo reads the manifest and config, skopeo copies
the image into an OCI layout, umoci unpacks it, and per-workload assertions look at the files."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from workloads import BIG_SIZE, tree_digest


class VerifyError(Exception):
    pass


def _run(argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise VerifyError("%s failed: %s" % (" ".join(argv[:3]), p.stderr.strip()[-500:]))
    return p.stdout


def inspect(ref):
    """Returns (manifest digest, manifest JSON, config JSON, pushed size in bytes)."""
    raw = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref]))
    if "manifests" in raw:
        raise VerifyError("%s is an index, expected one image manifest" % ref)
    info = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "docker://" + ref]))
    config = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "--config", "docker://" + ref]))
    size = raw["config"]["size"] + sum(layer["size"] for layer in raw["layers"])
    return info["Digest"], raw, config, size


def _count_files(root):
    n = 0
    for _, _, files in os.walk(root):
        n += len(files)
    return n


def _read(rootfs, path):
    with open(os.path.join(rootfs, path.lstrip("/")), "rb") as f:
        return f.read()


def _expect(cond, what):
    if not cond:
        raise VerifyError(what)


def _check_w1(rootfs, config, ctx, expected):
    cfg = config.get("config", {})
    _expect("GREETING=hello" in cfg.get("Env", []), "W1: ENV GREETING missing: %s" % cfg.get("Env"))
    _expect(cfg.get("Labels", {}).get("org.example.bench") == "w1", "W1: LABEL missing")
    _expect(cfg.get("WorkingDir") == "/app", "W1: WORKDIR is %r" % cfg.get("WorkingDir"))
    _expect(cfg.get("Cmd") == ["sh", "-c", "cat /app/greeting"], "W1: CMD is %r" % cfg.get("Cmd"))
    _expect(_read(rootfs, "/app/greeting") == b"hello\n", "W1: /app/greeting")
    _expect(_read(rootfs, "/app/data/state") == b"built\n", "W1: /app/data/state")
    _expect(_read(rootfs, "/app/small.txt") == _read(ctx, "small.txt"), "W1: /app/small.txt differs")


def _check_w2(rootfs, config, ctx, expected):
    n = _count_files(os.path.join(rootfs, "data"))
    _expect(n == 20000, "W2: %d files under /data, expected 20000" % n)
    _expect(len(os.listdir(os.path.join(rootfs, "data"))) == 200, "W2: not 200 directories")
    _expect(_read(rootfs, "/data/d199/f99") == b"file 199/99\n", "W2: /data/d199/f99")


def _check_w3(rootfs, config, ctx, expected):
    got = tree_digest(os.path.join(rootfs, "app"))
    _expect(got == expected(), "W3: /app differs from the context (tree digest %s)" % got)


def _check_w4(rootfs, config, ctx, expected):
    _expect(os.path.exists(os.path.join(rootfs, "tmp/bench-touched")), "W4: /tmp/bench-touched missing")
    _expect(_read(rootfs, "/etc/bench-echo") == b"bench\n", "W4: /etc/bench-echo")
    _expect(not os.path.lexists(os.path.join(rootfs, "etc/issue")), "W4: /etc/issue not deleted")
    _expect(os.path.exists(os.path.join(rootfs, "usr/bin/dpkg")), "W4: base files missing (/usr/bin/dpkg)")


def _check_w5(rootfs, config, ctx, expected):
    n = _count_files(os.path.join(rootfs, "opt/files"))
    _expect(n == 2000, "W5: %d files in /opt/files, expected 2000" % n)
    _expect(_read(rootfs, "/opt/files/a1999.txt") == b"artifact 1999\n", "W5: /opt/files/a1999.txt")
    _expect(_read(rootfs, "/opt/usr-share.tar.gz")[:2] == b"\x1f\x8b", "W5: tarball is not gzip")
    _expect(os.path.exists(os.path.join(rootfs, "opt/debian-bin/dpkg")), "W5: /opt/debian-bin/dpkg missing")
    _expect(os.path.exists(os.path.join(rootfs, "bin/busybox")), "W5: final stage is not busybox")
    # busybox has a dpkg applet: look for files only Debian has.
    for leaked in ("usr/bin/apt-get", "etc/debian_version"):
        _expect(not os.path.lexists(os.path.join(rootfs, leaked)), "W5: builder file /%s leaked" % leaked)


def _check_big(rootfs, config, ctx, expected):
    p = os.path.join(rootfs, "big.bin")
    _expect(os.path.getsize(p) == BIG_SIZE, "BIG: /big.bin has %d bytes" % os.path.getsize(p))
    got = tree_digest_single(p)
    _expect(got == expected(), "BIG: /big.bin content differs")


def _check_many(rootfs, config, ctx, expected):
    _expect(_read(rootfs, "/data/d500/f050") == b"changed\n", "MANY: /data/d500/f050 not changed")
    _expect(_read(rootfs, "/data/d500/f051") == b"file 500/51\n", "MANY: base file /data/d500/f051")
    n = _count_files(os.path.join(rootfs, "data"))
    _expect(n == 100000, "MANY: %d files under /data, expected 100000" % n)


def tree_digest_single(path):
    """sha256 of one file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


CHECKS = {"W1": _check_w1, "W2": _check_w2, "W3": _check_w3, "W4": _check_w4, "W5": _check_w5,
          "BIG": _check_big, "MANY": _check_many}


class Expected:
    """Context digests, computed once per workload and only when a check needs them."""

    def __init__(self, ctx_dir):
        self.ctx_dir = ctx_dir
        self.cache = {}

    def for_workload(self, name, ctx):
        def get():
            if name not in self.cache:
                if name == "BIG":
                    self.cache[name] = tree_digest_single(os.path.join(ctx, "big.bin"))
                else:
                    self.cache[name] = tree_digest(ctx)
            return self.cache[name]
        return get


def verify(workload, ref, ctx, expected, scratch):
    """Pulls ref and checks it; returns the manifest digest. Raises VerifyError on any problem."""
    digest, manifest, config, _ = inspect(ref)
    tmp = tempfile.mkdtemp(prefix="verify-", dir=scratch)
    try:
        _run(["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://" + ref, "oci:%s/layout:img" % tmp])
        _run(["umoci", "unpack", "--image", "%s/layout:img" % tmp, "%s/bundle" % tmp])
        rootfs = os.path.join(tmp, "bundle", "rootfs")
        CHECKS[workload](rootfs, config, ctx, expected.for_workload(workload, ctx))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return digest
