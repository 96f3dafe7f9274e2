"""Checks a pushed image with independent tools: skopeo reads the manifest and config, skopeo copies
the image into an OCI layout, umoci unpacks it, and per-workload assertions look at the files.

A multi-platform workload's destination must be an image index (OCI, or a Docker manifest list)
with exactly one entry per target platform; each entry's config must name that platform, and
each platform's image, pulled with skopeo --override-arch and unpacked with umoci, must hold what
the single-platform workload's checks expect, built on that platform's base (its ELF binaries are
that architecture's, so its RUNs ran under that architecture, emulated or not)."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import workloads
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


INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
# ELF e_machine of each architecture's binaries.
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def _skopeo_platform(platform):
    """skopeo's global options choosing platform "os/arch[/variant]" in an index."""
    os_, arch, *variant = platform.split("/")
    opts = ["--override-os", os_, "--override-arch", arch]
    return opts + (["--override-variant", variant[0]] if variant else [])


def inspect_index(ref, platforms):
    """Checks that ref is an index naming exactly `platforms`, each config saying so; returns
    (index digest, index JSON, {platform: config}, pushed size: every manifest, config and layer)."""
    raw_text = _run(["skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref])
    raw = json.loads(raw_text)
    _expect("manifests" in raw, "%s is one image manifest, expected an index over %s" % (ref, ", ".join(platforms)))
    _expect(raw.get("mediaType") in INDEX_TYPES, "%s: index media type %r" % (ref, raw.get("mediaType")))
    named = ["%s/%s" % (m.get("platform", {}).get("os"), m.get("platform", {}).get("architecture")) for m in raw["manifests"]]
    _expect(sorted(named) == sorted(platforms), "%s: the index names %s, expected %s" % (ref, named, list(platforms)))
    configs, size = {}, len(raw_text.encode())
    repo = ref.rsplit(":", 1)[0]  # REG:PORT/name:tag -> REG:PORT/name
    for platform, entry in zip(named, raw["manifests"]):
        by_digest = "docker://%s@%s" % (repo, entry["digest"])
        manifest = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "--raw", by_digest]))
        config = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "--config", by_digest]))
        _expect((config.get("os"), config.get("architecture")) == tuple(platform.split("/")[:2]),
                "%s: the %s entry's config says %s/%s" % (ref, platform, config.get("os"), config.get("architecture")))
        configs[platform] = config
        size += entry["size"] + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    digest = json.loads(_run(["skopeo", "inspect", "--tls-verify=false", "docker://" + ref]))["Digest"]
    return digest, raw, configs, size


def _elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    _expect(head[:4] == b"\x7fELF", "%s is not an ELF binary" % path)
    return int.from_bytes(head[18:20], "little")


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


def _w6_object(source):
    """What W6's "compiler" makes of a source file: sed | awk word count | sort (C locale), as text."""
    counts = {}
    for word in source.split():
        counts[word] = counts.get(word, 0) + 1
    return b"".join(sorted(b"%s %d\n" % (w, n) for w, n in counts.items()))


def _check_w6(rootfs, config, ctx, expected):
    """Every source compiled and linked; the edited file's object (and a few others) computed
    independently from the context as it is now, so an edit build that reused a stale layer
    fails here."""
    cfg = config.get("config", {})
    _expect(cfg.get("Cmd") == ["cat", "/out/BUILD_ID"], "W6: CMD is %r" % cfg.get("Cmd"))
    _expect(cfg.get("WorkingDir") == "/src", "W6: WORKDIR is %r" % cfg.get("WorkingDir"))
    objdir = os.path.join(rootfs, "out", "obj")
    objects = sorted(os.path.relpath(os.path.join(d, f), objdir) for d, _, fs in os.walk(objdir) for f in fs)
    _expect(len(objects) == workloads.W6_FILES, "W6: %d objects, expected %d" % (len(objects), workloads.W6_FILES))
    edited_rel = os.path.relpath(workloads.W6_EDITED, "src")
    for rel in (edited_rel, os.path.relpath(workloads._w6_path(0), "src"), os.path.relpath(workloads._w6_path(319), "src")):
        src = _read(ctx, os.path.join("src", rel))
        _expect(_read(rootfs, os.path.join("/src", rel)) == src, "W6: /src/%s differs from the context" % rel)
        obj = gzip.decompress(_read(rootfs, "/out/obj/%s.o.gz" % rel))
        _expect(obj == _w6_object(src), "W6: /out/obj/%s.o.gz is not the object of the context's %s" % (rel, rel))
    edited_obj = gzip.decompress(_read(rootfs, "/out/obj/%s.o.gz" % edited_rel))
    if _read(ctx, workloads.W6_EDITED).endswith(workloads.W6_EDIT_LINE):
        _expect(b"bench_edited_counter 1\n" in edited_obj, "W6: the edit is not in the edited file's object")
    else:
        _expect(b"bench_edited_counter" not in edited_obj, "W6: an unedited build has the edit in it")
    app = b"".join(_read(objdir, o) for o in objects)
    _expect(_read(rootfs, "/out/app.bin") == app, "W6: /out/app.bin is not the objects in sorted order")
    digest = hashlib.sha256(app).hexdigest()
    _expect(_read(rootfs, "/out/app.sha256") == b"%s  /out/app.bin\n" % digest.encode(), "W6: /out/app.sha256")
    _expect(_read(rootfs, "/out/BUILD_ID") == digest.encode() + b"\n", "W6: /out/BUILD_ID")


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


CHECKS = {"W1": _check_w1, "W2": _check_w2, "W3": _check_w3, "W4": _check_w4, "W5": _check_w5, "W6": _check_w6,
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


# A binary of the base in each workload's root: its architecture is the image's.
BASE_BINARY = {"W1": "bin/busybox", "W4": "usr/bin/dpkg"}


def verify_multi(workload, platforms, single, ref, ctx, expected, scratch):
    """Checks an index and every platform's image in it; returns the index digest."""
    digest, _, configs, _ = inspect_index(ref, platforms)
    for platform in platforms:
        tmp = tempfile.mkdtemp(prefix="verify-", dir=scratch)
        try:
            _run(["skopeo"] + _skopeo_platform(platform) + ["copy", "-q", "--src-tls-verify=false",
                                                             "docker://" + ref, "oci:%s/layout:img" % tmp])
            _run(["umoci", "unpack", "--image", "%s/layout:img" % tmp, "%s/bundle" % tmp])
            rootfs = os.path.join(tmp, "bundle", "rootfs")
            arch = platform.split("/")[1]
            got = _elf_machine(os.path.join(rootfs, BASE_BINARY[single]))
            _expect(got == ELF_MACHINE[arch], "%s %s: /%s is ELF machine %#x, not %s's" % (
                workload, platform, BASE_BINARY[single], got, arch))
            try:
                CHECKS[single](rootfs, configs[platform], ctx, expected.for_workload(single, ctx))
            except VerifyError as e:
                raise VerifyError("%s %s: %s" % (workload, platform, e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return digest


def verify(workload, ref, ctx, expected, scratch):
    """Pulls ref and checks it; returns the manifest digest. Raises VerifyError on any problem."""
    platforms = workloads.platforms(workload)
    if platforms:
        return verify_multi(workload, platforms, workloads.single(workload), ref, ctx, expected, scratch)
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
