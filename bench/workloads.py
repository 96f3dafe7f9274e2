"""The benchmark workloads: Dockerfiles, deterministic build contexts, and what a correct image holds.

Every workload's Dockerfile names its bases through `ARG BASE_REGISTRY`, so the same files serve
every run whatever port the bench registry gets. Contexts are generated from fixed seeds with
fixed mtimes and kept under the bench cache directory: each tool, mode and repetition reads the
very same bytes.
"""

import hashlib
import os
import random

FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z

W1 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/busybox:1.35
ENV APP_HOME=/app GREETING=hello
LABEL org.example.bench=w1
WORKDIR /app
RUN echo "$GREETING" > /app/greeting
RUN mkdir -p /app/data && echo built > /app/data/state
COPY small.txt /app/small.txt
CMD ["sh", "-c", "cat /app/greeting"]
"""

# 20,000 files in 200 directories with the shell's own echo, test and arithmetic: the cost is the
# file system and the snapshot, not process start-up.
W2 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/busybox:1.35
RUN mkdir /data && i=0; while [ $i -lt 200 ]; do mkdir /data/d$i; j=0; \\
    while [ $j -lt 100 ]; do echo "file $i/$j" > /data/d$i/f$j; j=$((j+1)); done; \\
    i=$((i+1)); done
"""

W3 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/busybox:1.35
COPY . /app
"""

W4 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/debian:bookworm-minbase
RUN touch /tmp/bench-touched
RUN echo bench > /etc/bench-echo
RUN rm /etc/issue
"""

W5 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/debian:bookworm-minbase AS builder
RUN mkdir -p /out/files && i=0; while [ $i -lt 2000 ]; do echo "artifact $i" > /out/files/a$i.txt; \\
    i=$((i+1)); done
RUN tar -czf /out/usr-share.tar.gz -C /usr share
RUN cp -a /usr/bin /out/bin

FROM ${BASE_REGISTRY}/busybox:1.35
COPY --from=builder /out/files /opt/files
COPY --from=builder /out/usr-share.tar.gz /opt/usr-share.tar.gz
COPY --from=builder /out/bin /opt/debian-bin
"""

BIG = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/busybox:1.35
COPY big.bin /big.bin
"""

MANY = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/many-files:100k
RUN echo changed > /data/d500/f050
"""

# The two-platform workloads: W1 and W4 unchanged but for their bases, indexes over linux/amd64
# and linux/arm64 (lib/multi-arch-bases.sh), built for both platforms in one command. arm64's RUNs
# run under QEMU user emulation (binfmt_misc) for every tool alike.
W1X2 = W1.replace("/busybox:1.35", "/busybox-multi:1.35")
W4X2 = W4.replace("/debian:bookworm-minbase", "/debian-multi:bookworm-minbase")

# name -> (description, Dockerfile)
WORKLOADS = {
    "W1": ("small: ENV, LABEL, WORKDIR, two RUNs, one small COPY, CMD", W1),
    "W2": ("many files: one RUN writing 20,000 files in 200 dirs", W2),
    "W3": ("big copy: COPY . of 5,000 files, ~200 MB (half random, half text)", W3),
    "W4": ("big base: Debian minbase + touch, echo, rm of a base file", W4),
    "W5": ("multi-stage: Debian builder (2,000 files, tarball, /usr/bin), busybox final", W5),
    "BIG": ("one 2 GiB file (COPY): memory must stay flat", BIG),
    "MANY": ("100,000 files in the base, one file changed (snapshot cost)", MANY),
    "W1x2": ("W1 for linux/amd64 and linux/arm64 (busybox index base), one image index", W1X2),
    "W4x2": ("W4 for linux/amd64 and linux/arm64 (Debian index base), one image index", W4X2),
}

# Workloads built for several platforms: the target platforms, and the single-platform workload
# whose Dockerfile (and checks) each platform's image follows.
MULTI_PLATFORM = {
    "W1x2": (("linux/amd64", "linux/arm64"), "W1"),
    "W4x2": (("linux/amd64", "linux/arm64"), "W4"),
}


def platforms(name):
    """The target platforms of a multi-platform workload, or () for a single-platform one."""
    return MULTI_PLATFORM.get(name, ((), name))[0]


def single(name):
    """The single-platform workload a (multi-platform) workload follows: its context and checks."""
    return MULTI_PLATFORM.get(name, ((), name))[1]

BIG_SIZE = 2 << 30


def _fix_times(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))


def _text_block(rng, size):
    words = ("layer snapshot digest manifest registry context stage build root cache push pull "
             "tar gzip zstd whiteout overlay chroot config history label entrypoint").split()
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def _gen_w3(ctx):
    """5,000 files in 50 directories, ~200 MB: even files random bytes, odd files text."""
    rng = random.Random(3)
    text = _text_block(rng, 1 << 20)
    for i in range(5000):
        d = os.path.join(ctx, "dir%02d" % (i % 50))
        os.makedirs(d, exist_ok=True)
        size = rng.randint(8 << 10, 72 << 10)
        if i % 2 == 0:
            data = rng.randbytes(size)
            name = "blob%04d.bin" % i
        else:
            start = rng.randrange(0, len(text) - size)
            data = text[start:start + size]
            name = "doc%04d.txt" % i
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def _gen_w1(ctx):
    with open(os.path.join(ctx, "small.txt"), "w") as f:
        f.write("a small file copied by W1\n" * 40)


def _gen_big(ctx):
    """One 2 GiB file of seeded pseudo-random bytes (incompressible, like a real artefact)."""
    rng = random.Random(6)
    with open(os.path.join(ctx, "big.bin"), "wb") as f:
        left = BIG_SIZE
        while left:
            n = min(left, 8 << 20)
            f.write(rng.randbytes(n))
            left -= n


GENERATORS = {"W1": _gen_w1, "W3": _gen_w3, "BIG": _gen_big}


def prepare(name, cache_dir):
    """Returns (context dir, Dockerfile path), generating the context once per cache dir."""
    # A multi-platform workload reads its single-platform twin's context: the very same bytes.
    ctx = os.path.join(cache_dir, "contexts", single(name))
    stamp = ctx + ".done"
    if not os.path.exists(stamp):
        if os.path.exists(ctx):
            import shutil
            shutil.rmtree(ctx)
        os.makedirs(ctx)
        gen = GENERATORS.get(single(name))
        if gen:
            gen(ctx)
        _fix_times(ctx)
        open(stamp, "w").close()
    dockerfile = os.path.join(cache_dir, "dockerfiles", name, "Dockerfile")
    os.makedirs(os.path.dirname(dockerfile), exist_ok=True)
    with open(dockerfile, "w") as f:
        f.write(WORKLOADS[name][1])
    return ctx, dockerfile


def tree_digest(root):
    """sha256 over (relative path, size, content digest) of every regular file under root."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            fh = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
            h.update(("%s %d %s\n" % (os.path.relpath(p, root), os.path.getsize(p), fh.hexdigest())).encode())
    return h.hexdigest()
