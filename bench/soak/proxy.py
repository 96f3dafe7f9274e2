"""A fault-injecting HTTP proxy for the soak (bench/soak/soak.py): every request in front of a
real registry meets, with probability RATE, one fault drawn from every kind a registry or a
proxy really shows.

It is the soak's twin of tests/faults/mod.rs (the suite's proxy, whose faults are placed by
each test): here they are random, with a fixed seed so a run can be repeated. One request per
connection (`Connection: close` is added towards the registry), so every request is seen.

Kinds: reset (the connection closed unanswered), 500/502/503, 429 with Retry-After: 1, a
response body cut short, a response body that stops mid-way with the connection left open
(a stall), an upload cut short, an upload the registry stops reading (an upload stall).
"""

import random
import socket
import threading
import time

STALL_HOLD = 90  # seconds a stalled connection is held open (far past the stall timeout)

KINDS = ["reset", "500", "502", "503", "429", "truncate", "stall", "cut_upload", "stall_upload"]


def read_head(sock):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        try:
            b = sock.recv(1)
        except OSError:
            return None
        if not b or len(head) > 65536:
            return None
        head += b
        if len(head) == 1 and b == b"\x16":
            return None  # a TLS probe
    return head


def header(head, name):
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


class Proxy:
    def __init__(self, upstream, rate, seed):
        self.upstream = upstream
        self.rate = rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {k: 0 for k in KINDS}
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def draw(self, has_body):
        with self.lock:
            self.requests += 1
            if self.rng.random() >= self.rate:
                return None, 0.0
            kinds = [k for k in KINDS if has_body or not k.endswith("_upload")]
            return self.rng.choice(kinds), self.rng.random()

    def applied(self, kind):
        with self.lock:
            self.counts[kind] += 1

    def handle(self, client):
        try:
            self._handle(client)
        except OSError:
            pass
        finally:
            try:
                client.close()
            except OSError:
                pass

    def _handle(self, client):
        client.settimeout(120)
        head = read_head(client)
        if head is None:
            return
        length = int(header(head, "content-length") or 0)
        chunked = (header(head, "transfer-encoding") or "").lower() == "chunked"
        fault, frac = self.draw(length > 0 or chunked)
        if fault in ("reset", "500", "502", "503", "429", "cut_upload", "stall_upload"):
            self.applied(fault)
        if fault == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        if fault in ("500", "502", "503", "429"):
            if length and length < (64 << 20):
                remaining = length
                while remaining > 0:
                    b = client.recv(min(remaining, 65536))
                    if not b:
                        break
                    remaining -= len(b)
            extra = "Retry-After: 1\r\n" if fault == "429" else ""
            body = b"injected " + fault.encode()
            client.sendall(("HTTP/1.1 %s Injected\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n"
                            "Connection: close\r\n\r\n" % (fault, extra, len(body))).encode() + body)
            return
        if fault in ("cut_upload", "stall_upload"):
            want = int((length or 1 << 20) * frac)
            got = 0
            while got < want:
                b = client.recv(min(want - got, 65536))
                if not b:
                    break
                got += len(b)
            if fault == "stall_upload":
                time.sleep(STALL_HOLD)
            return
        up = socket.create_connection(tuple(self.upstream.rsplit(":", 1)), timeout=120)
        try:
            first, rest = head.split(b"\r\n", 1)
            up.sendall(first + b"\r\nConnection: close\r\n" + rest)
            threading.Thread(target=pipe, args=(client, up), daemon=True).start()
            resp = read_head(up)
            if resp is None:
                return
            client.sendall(resp)
            body_len = int(header(resp, "content-length") or 0)
            if fault in ("truncate", "stall") and body_len > 0:
                self.applied(fault)
                cut = int(body_len * frac)
                sent = 0
                while sent < cut:
                    b = up.recv(min(cut - sent, 65536))
                    if not b:
                        break
                    client.sendall(b)
                    sent += len(b)
                if fault == "stall":
                    time.sleep(STALL_HOLD)
                return
            while True:
                b = up.recv(65536)
                if not b:
                    break
                client.sendall(b)
        finally:
            up.close()


def pipe(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
