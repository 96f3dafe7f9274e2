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

# Edit one source file and rebuild, the commonest CI case: a project's sources copied onto a
# Debian base, then RUNs that build them with what minbase has. "Compiling" a file is a
# sed | awk | sort | gzip pipeline (a word count of the file, compressed): one object per source
# file, deterministic (C locale sort, gzip -n); "linking" concatenates the objects in sorted
# order and hashes the result. The edit mode changes one source file (W6_EDITED) and rebuilds:
# every tool then redoes the COPY and every RUN after it, as Docker's layer semantics demand.
W6 = """\
ARG BASE_REGISTRY
FROM ${BASE_REGISTRY}/debian:bookworm-minbase
WORKDIR /src
COPY src/ /src/
RUN sh ./build.sh compile
RUN sh ./build.sh link
RUN cut -d' ' -f1 /out/app.sha256 > /out/BUILD_ID
CMD ["cat", "/out/BUILD_ID"]
"""

# The project's build script (src/build.sh; a script rather than RUN lines because kaniko expands
# ${var#...} and ${var%...} in RUN itself and rejects them).
W6_BUILD_SH = """\
#!/bin/sh
# compile: one object per source (a sorted word count, gzipped); link: the objects in order, hashed.
set -eu
export LC_ALL=C
case "$1" in
compile)
  mkdir -p /out/obj
  find . -name '*.c' | sort | while read -r f; do
    o=/out/obj/${f#./}.o.gz
    mkdir -p "${o%/*}"
    sed -e 's/[[:space:]][[:space:]]*/ /g' "$f" |
      awk '{ for (i = 1; i <= NF; i++) n[$i]++ } END { for (w in n) print w, n[w] }' |
      sort | gzip -n -6 > "$o"
  done;;
link)
  cd /out/obj
  find . -name '*.o.gz' | sort | xargs cat > /out/app.bin
  sha256sum /out/app.bin > /out/app.sha256;;
esac
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
    "W6": ("edit and rebuild: Debian, COPY of 320 sources (~5 MB), RUNs building them; one file edited", W6),
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


W6_FILES = 320
W6_DIRS = 16
# The file the edit mode changes, and the line it appends: a new token, so its object changes.
W6_EDITED = "src/mod07/unit0167.c"
W6_EDIT_LINE = b"int bench_edited_counter = 1; /* one-line change */\n"


def _w6_path(i):
    return "src/mod%02d/unit%04d.c" % (i % W6_DIRS, i)


def _gen_w6(ctx):
    """320 C-like source files in 16 directories, 8–24 KB each (~5 MB), from a fixed seed."""
    rng = random.Random(66)
    words = ("int char long void static const return if else for while struct union sizeof "
             "buffer length index count result error value node next prev head tail size key "
             "= == != < > + - * / ; , ( ) { } [ ] 0 1 2 16 255 NULL").split()
    for i in range(W6_FILES):
        p = os.path.join(ctx, _w6_path(i))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        size = rng.randint(8 << 10, 24 << 10)
        lines, n = ["/* unit %d */\n" % i], 0
        while n < size:
            ident = "v%d_%d" % (i, rng.randrange(400))
            line = "    " + " ".join(rng.choice(words) if rng.random() < 0.8 else ident
                                     for _ in range(rng.randint(3, 12))) + "\n"
            lines.append(line)
            n += len(line)
        with open(p, "w") as f:
            f.write("".join(lines))
    with open(os.path.join(ctx, "src", "build.sh"), "w") as f:
        f.write(W6_BUILD_SH)


def _w6_original(ctx):
    """The edited file's generated content (the edit mode appends to it; restore rewrites it)."""
    p = os.path.join(ctx, W6_EDITED)
    with open(p, "rb") as f:
        data = f.read()
    return data[:-len(W6_EDIT_LINE)] if data.endswith(W6_EDIT_LINE) else data


def edit(name, ctx):
    """The edit mode's change to the context, in place (CI checks the new commit out into the same
    directory): one line appended to one source file, its mtime moved on by a minute."""
    if single(name) != "W6":
        raise ValueError("%s has no edit mode" % name)
    p = os.path.join(ctx, W6_EDITED)
    data = _w6_original(ctx)
    with open(p, "wb") as f:
        f.write(data + W6_EDIT_LINE)
    os.utime(p, (FIXED_MTIME + 60, FIXED_MTIME + 60))


def restore(name, ctx):
    """Undoes edit(): the context as generated (called before every cold build, so an
    interrupted run never leaves an edited context behind)."""
    if single(name) != "W6":
        return
    p = os.path.join(ctx, W6_EDITED)
    data = _w6_original(ctx)
    with open(p, "wb") as f:
        f.write(data)
    os.utime(p, (FIXED_MTIME, FIXED_MTIME))


def has_edit(name):
    return single(name) == "W6"


GENERATORS = {"W1": _gen_w1, "W3": _gen_w3, "W6": _gen_w6, "BIG": _gen_big}


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
    restore(name, ctx)
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
