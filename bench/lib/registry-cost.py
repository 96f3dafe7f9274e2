#!/usr/bin/env python3
"""What one request costs the registry's CPU, by kind (issue 17's W1 cold floor).

    bench/lib/registry-cost.py --registry HOST:PORT --registry-pid PID [--n 60] [--out FILE]

On one keep-alive connection, N requests of each kind a cold build sends (a blob upload's POST and
PUT, a POST alone, a blob HEAD, a cross-repository mount, a manifest PUT under a new tag, the same
manifest under a second tag, a manifest GET that misses), each kind timed apart: the registry's
CPU time (`utime + stime` of /proc/PID/stat, read a moment after the last answer) and the wall
time, per request. The registry must serve no one else meanwhile. One JSON line per kind to --out
(and a table on stdout). Nothing here is trowel: it says what any client's requests cost, so a
cold build's registry load is its request count times these.
"""

import argparse
import hashlib
import http.client
import json
import os
import sys
import time


def registry_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--registry-pid", type=int, required=True)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--out")
    args = ap.parse_args()
    host, port = args.registry.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))

    def req(method, url, body=None, headers=None):
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("Location")

    repo = "registry-cost/r%d" % int(time.time() * 1000)
    blobs = []
    manifest_type = "application/vnd.oci.image.manifest.v1+json"

    def upload(i):
        data = os.urandom(200) + b"%d" % i
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, loc = req("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
        assert status == 202, status
        status, _ = req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + digest, data,
                        {"Content-Type": "application/octet-stream"})
        assert status == 201, status
        blobs.append((digest, len(data)))

    def post(_):
        assert req("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})[0] == 202

    def head(i):
        assert req("HEAD", "/v2/%s/blobs/%s" % (repo, blobs[i][0]))[0] == 200

    def mount(i):
        url = "/v2/%s-to/blobs/uploads/?mount=%s&from=%s" % (repo, blobs[i][0], repo)
        assert req("POST", url, b"", {"Content-Length": "0"})[0] == 201

    def manifest(i):
        config = blobs[0]
        return json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config[0], "size": config[1]},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": blobs[i][0], "size": blobs[i][1]}]}).encode()

    def tag(prefix):
        def put(i):
            status, _ = req("PUT", "/v2/%s/manifests/%s%d" % (repo, prefix, i), manifest(i),
                            {"Content-Type": manifest_type})
            assert status == 201, status
        return put

    def missing(i):
        assert req("GET", "/v2/%s/manifests/absent%d" % (repo, i), None, {"Accept": manifest_type})[0] == 404

    kinds = [("blob upload (POST + PUT)", upload), ("POST (upload session) alone", post), ("blob HEAD", head),
             ("cross-repository mount", mount), ("manifest PUT, new tag", tag("key")),
             ("same manifest, second tag", tag("pointer")), ("manifest GET, 404", missing)]
    out = open(args.out, "a") if args.out else None
    for name, fn in kinds:
        time.sleep(0.3)
        cpu0, t0 = registry_cpu(args.registry_pid), time.monotonic()
        for i in range(args.n):
            fn(i)
        wall = time.monotonic() - t0
        time.sleep(0.3)
        cpu = registry_cpu(args.registry_pid) - cpu0
        line = {"kind": name, "n": args.n, "registry_cpu_ms": round(cpu / args.n * 1000, 2),
                "wall_ms": round(wall / args.n * 1000, 2)}
        print("%-30s %6.2f ms registry CPU  %6.2f ms wall  (per operation, %d)" % (
            name, line["registry_cpu_ms"], line["wall_ms"], args.n))
        if out:
            out.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
