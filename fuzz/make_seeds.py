#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/seeds/ (the real ones, registry manifests and configs and
testdata Dockerfiles, are copied in as they are). Each unpack seed is one option byte followed
by a layer: benign layers (files, dirs, symlinks, hardlinks, whiteouts, PAX and GNU long names,
gzip and zstd) and the hostile shapes the unpacker must refuse or contain (traversal, absolute
paths, symlink and hardlink escapes aimed at the fuzz target's canary, escaping whiteouts,
devices, lying sizes, huge extension headers, duplicates).

    python3 fuzz/make_seeds.py      # rewrites fuzz/seeds/{unpack,dockerignore,manifest,config,run_mount,platform}/gen-*
"""
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")
CANARY = "/tmp/trowel-fuzz/canary"  # fixed by fuzz_targets/unpack.rs


def entry(tf, name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = 1_600_000_000
    ti.linkname = link
    if pax:
        ti.pax_headers = pax
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def layer(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            entry(tf, **e)
    # Drop tarfile's padding to a 10 KiB record: the end-of-archive marker is enough, and small
    # seeds keep libFuzzer's mutations on the headers.
    data = buf.getvalue().rstrip(b"\0")
    return data + b"\0" * (-len(data) % 512 + 1024)


F = lambda name, data=b"x", **kw: dict(name=name, data=data, **kw)
D = lambda name, **kw: dict(name=name, kind=tarfile.DIRTYPE, mode=0o755, **kw)
S = lambda name, link: dict(name=name, kind=tarfile.SYMTYPE, link=link, mode=0o777)
H = lambda name, link: dict(name=name, kind=tarfile.LNKTYPE, link=link)

LAYERS = {
    "basic": [D("etc"), F("etc/hostname", b"fuzz\n"), D("usr/bin"), F("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
              S("bin", "usr/bin"), H("etc/hostname2", "etc/hostname")],
    "lib64": [D("lib"), S("lib64", "/lib"), F("lib64/ld.so", b"ELF")],
    "whiteouts": [D("a"), F("a/keep"), F("a/.wh.gone", b""), D("b"), F("b/.wh..wh..opq", b""), F("b/new"),
                  F(".wh.old", b""), F(".wh..wh.plnk/123.4", b"")],
    "pax-long": [F("d/" + "n" * 180, b"long", pax={"mtime": "1700000000.5", "SCHILY.xattr.user.k": "v"})],
    "gnu-long": [F("g/" + "l" * 150, b"gnu"), S("g/" + "s" * 120, "l" * 110)],
    "duplicates": [F("x", b"first"), S("x", "y"), F("x", b"second"), D("d"), F("d", b"file"), F("e"), D("e")],
    "dotdot": [F("../canary/secret", b"pwned"), F("a/../../canary/x", b"pwned")],
    "absolute": [F(CANARY + "/secret", b"pwned"), F("/etc/evil", b"pwned")],
    "symlink-escape": [S("evil", "../canary"), F("evil/secret", b"pwned"), S("abs", CANARY), F("abs/secret", b"in root")],
    "symlink-chain": [D("d"), S("d/up", ".."), S("d/up2", "up/.."), F("d/up2/canary/x", b"pwned")],
    "hardlink-escape": [H("h", "../canary/secret"), H("h2", CANARY + "/secret"), S("s", "../canary"), H("h3", "s/secret")],
    "whiteout-escape": [F("../.wh.canary", b""), F(".wh...", b""), S("up", ".."), F("up/.wh.canary", b"")],
    "devices": [dict(name="dev/null", kind=tarfile.CHRTYPE, mode=0o666), dict(name="dev/fifo", kind=tarfile.FIFOTYPE)],
    "loop": [S("a", "b"), S("b", "a"), F("a/x")],
    "file-parent": [F("f"), F("f/x")],
}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def zstd(data):
    try:
        return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def unpack_seeds():
    out = os.path.join(SEEDS, "unpack")
    for name, entries in LAYERS.items():
        tar = layer(entries)
        write(os.path.join(out, f"gen-{name}"), bytes([0b011]) + tar)
    tar = layer(LAYERS["basic"])
    write(os.path.join(out, "gen-basic.gz"), bytes([0b010]) + gzip.compress(tar, mtime=0))
    z = zstd(tar)
    if z:
        write(os.path.join(out, "gen-basic.zst"), bytes([0b110]) + z)
    write(os.path.join(out, "gen-gnu-format"), bytes([2]) + layer(LAYERS["gnu-long"], tarfile.GNU_FORMAT))
    # A header claiming 1 TiB followed by 10 bytes; and a 2 MiB PAX header.
    h = tarfile.TarInfo("huge")
    h.size = 1 << 40
    write(os.path.join(out, "gen-lying-size"), bytes([2]) + h.tobuf(tarfile.GNU_FORMAT) + b"x" * 10)
    x = tarfile.TarInfo("././@PaxHeader")
    x.type = tarfile.XHDTYPE
    x.size = 2 << 20
    write(os.path.join(out, "gen-huge-pax"), bytes([2]) + x.tobuf(tarfile.USTAR_FORMAT) + b"a" * 4096)


def dockerignore_seeds():
    out = os.path.join(SEEDS, "dockerignore")
    cases = {
        "exceptions": "*\n!keep\n!src/**/*.rs\nsrc/gen\n\0keep\nsrc\nsrc/a/b.rs\nsrc/gen/x.rs\nother",
        "double-star": "**/node_modules\n**/*.log\n!important.log\n\0a/node_modules\na/b/x.log\nimportant.log",
        "classes": "[a-c]?.txt\n\\#literal\n#comment\n  spaced  \n/abs/path\n./rel/../x\n\0b1.txt\n#literal\nabs/path/f",
        "dir-exception": "dir\n!dir/sub\n\0dir\ndir/sub\ndir/sub/file\ndir/other",
    }
    for name, text in cases.items():
        write(os.path.join(out, f"gen-{name}"), text.encode())


def manifest_seeds():
    out = os.path.join(SEEDS, "manifest")
    zero = "sha256:" + "0" * 64
    docs = {
        "no-media-type": ("application/vnd.docker.distribution.manifest.v2+json",
                          {"schemaVersion": 2, "config": {"mediaType": "x", "digest": zero, "size": 2}, "layers": []}),
        "bare-index": ("", {"schemaVersion": 2, "manifests": [
            {"mediaType": "m", "digest": zero, "size": 1, "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "m", "digest": zero, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}}]}),
        "schema1": ("application/vnd.docker.distribution.manifest.v1+prettyjws", {"schemaVersion": 1, "fsLayers": []}),
        "bad-digest": ("", {"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:../../etc/passwd", "size": 1},
                            "layers": []}),
    }
    for name, (ct, doc) in docs.items():
        write(os.path.join(out, f"gen-{name}"), (ct + "\n" + json.dumps(doc)).encode())


def config_seeds():
    out = os.path.join(SEEDS, "config")
    cfg = {
        "architecture": "arm", "variant": "v7", "os": "linux", "container": "abc", "docker_version": "20",
        "container_config": {"Hostname": "h"},
        "config": {"Env": ["PATH=/bin", "NOEQUALS", "A=b=c"], "Cmd": ["sh"], "Entrypoint": None, "User": "1000:1000",
                   "WorkingDir": "/app", "Shell": ["/bin/bash", "-c"], "OnBuild": ["RUN echo hi"],
                   "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}, "Labels": {"a": "b"},
                   "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "StopSignal": "SIGTERM", "Hostname": "x"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
        "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "x", "empty_layer": True}],
    }
    write(os.path.join(out, "gen-docker-fields.json"), json.dumps(cfg).encode())
    write(os.path.join(out, "gen-odd-shapes.json"),
          json.dumps({"config": "string", "rootfs": [], "history": {"not": "an array"}}).encode())


def run_mount_seeds():
    """Every `RUN --mount=` value of testdata/ and the tests, and the grammar's corners."""
    out = os.path.join(SEEDS, "run_mount")
    cases = {
        "bind-default": "target=/src",
        "bind-from-rw": "type=bind,from=builder,source=/out,target=/in,rw",
        "cache-locked": "type=cache,id=apt,target=/var/cache/apt,sharing=locked,mode=0755,uid=100,gid=101",
        "cache-ro": "type=cache,target=/root/.cache,readonly",
        "tmpfs-size": "type=tmpfs,target=/tmp,size=64m",
        "secret-env": "type=secret,id=token,env=TOKEN,required",
        "secret-file": "type=secret,id=npmrc,target=/root/.npmrc,mode=0400",
        "ssh": "type=ssh,id=default,required=true",
        "quoted": '"type=bind","target=/a,b","source=x""y"',
        "variables": "type=cache,id=${CACHE_ID},target=$HOME/.cache",
        "bad-type": "type=volume,target=/x",
        "bad-key": "type=bind,tagret=/x",
        "dup-key": "target=/a,target=/b",
        "bad-sharing": "type=cache,target=/c,sharing=exclusive",
        "bad-mode": "type=secret,id=a,mode=999",
        "bare-flags": "ro,rw,required,readonly,readwrite",
    }
    for name, text in cases.items():
        write(os.path.join(out, f"gen-{name}"), text.encode())
    found = set()
    for root, _, files in os.walk(os.path.join(HERE, "..", "testdata")):
        for f in files:
            if f == "Dockerfile" or f.endswith((".Dockerfile", ".dockerfile")):
                with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
                    found.update(re.findall(r"--mount=(\S+)", fh.read()))
    for i, text in enumerate(sorted(found)):
        write(os.path.join(out, f"gen-testdata-{i:02}"), text.encode())


def platform_seeds():
    """The platforms people write, containerd's aliases, and near misses."""
    out = os.path.join(SEEDS, "platform")
    cases = ["linux/amd64", "linux/arm64/v8", "Linux/AArch64", "arm", "armhf", "linux/arm/v5",
             "linux/ppc64le", "linux/s390x", "linux/riscv64", "windows/amd64", "darwin/arm64",
             "linux/amd46", "linux//amd64", "linux/arm/v9", " linux/386 ", "freebsd/x86_64/v3"]
    for i, text in enumerate(cases):
        write(os.path.join(out, f"gen-{i:02}"), text.encode())


if __name__ == "__main__":
    for d in ("unpack", "dockerignore", "manifest", "config", "dockerfile", "run_mount", "platform"):
        os.makedirs(os.path.join(SEEDS, d), exist_ok=True)
    unpack_seeds()
    dockerignore_seeds()
    manifest_seeds()
    config_seeds()
    run_mount_seeds()
    platform_seeds()
    # Every Dockerfile and .dockerignore of testdata/, as they are.
    testdata = os.path.join(HERE, "..", "testdata")
    for root, _, files in os.walk(testdata):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), testdata).replace("/", "__")
            if f == "Dockerfile" or f.endswith(".Dockerfile") or f.endswith(".dockerfile"):
                shutil.copy(os.path.join(root, f), os.path.join(SEEDS, "dockerfile", rel))
            elif f.endswith(".dockerignore"):
                shutil.copy(os.path.join(root, f), os.path.join(SEEDS, "dockerignore", rel))
