"""Google Cloud Storage and Google's token services on 127.0.0.1, for tests/context_gcs.rs.

- the GCS emulator (PyPI gcp-storage-emulator, in memory): the JSON API without credentials,
  what STORAGE_EMULATOR_HOST points at;
- an authenticating front of the same storage: every request must carry
  `Authorization: Bearer TOKEN` with a token issued below (401 otherwise); the bucket
  `forbidden` answers 403 to every token; then the request goes on to the emulator;
- a token endpoint (`/token`): the JWT bearer grant of a service account key, whose RS256
  signature is verified with the key's public key (`--public-key`, the `cryptography` package)
  and whose `iss`, `aud` and `scope` are checked; and the refresh-token grant of an
  `authorized_user` file (`--client-secret`, `--refresh-token`);
- a metadata server (`/computeMetadata/v1/instance/service-accounts/default/token`, only with
  `Metadata-Flavor: Google`), what GCE_METADATA_HOST points at.

Every token issued is appended to STATE/tokens (so the test can look for it in trowel's output)
and every request line to STATE/requests. Prints one JSON line with the ports, then serves until
its standard input closes (the test process ended).
"""

import argparse
import base64
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from gcp_storage_emulator.server import create_server

SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"

args = None
issued = set()
lock = threading.Lock()


def record(name, line):
    with lock, open(os.path.join(args.state, name), "a") as f:
        f.write(line + "\n")


def issue(kind):
    token = "ya29.%s-%s" % (kind, secrets.token_urlsafe(24))
    with lock:
        issued.add(token)
    record("tokens", token)
    return token


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class Google(Handler):
    """The token endpoint and the metadata server."""

    def do_POST(self):
        record("requests", "google POST " + self.path)
        if self.path != "/token":
            return self.answer(404, {"error": "not_found"})
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        grant = form.get("grant_type", [""])[0]
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self.jwt_grant(form.get("assertion", [""])[0])
        if grant == "refresh_token":
            ok = (
                form.get("client_secret", [""])[0] == args.client_secret
                and form.get("refresh_token", [""])[0] == args.refresh_token
            )
            if not ok:
                return self.answer(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            return self.answer(200, {"access_token": issue("user"), "expires_in": 3599, "token_type": "Bearer"})
        return self.answer(400, {"error": "unsupported_grant_type"})

    def jwt_grant(self, jwt):
        try:
            h, c, s = jwt.split(".")
            header, claims = json.loads(b64url(h)), json.loads(b64url(c))
            key = serialization.load_pem_public_key(open(args.public_key, "rb").read())
            key.verify(b64url(s), (h + "." + c).encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        expected_aud = "http://127.0.0.1:%d/token" % self.server.server_address[1]
        if header.get("alg") != "RS256" or claims.get("aud") != expected_aud or claims.get("scope") != SCOPE:
            return self.answer(400, {"error": "invalid_grant", "error_description": "bad claims %r %r" % (header, claims)})
        if claims.get("iss") != args.client_email or not claims["iat"] < claims["exp"] <= claims["iat"] + 3600:
            return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT claims."})
        return self.answer(200, {"access_token": issue("sa"), "expires_in": 3599, "token_type": "Bearer"})

    def do_GET(self):
        record("requests", "google GET " + self.path + " flavor=" + str(self.headers.get("Metadata-Flavor")))
        if self.path != "/computeMetadata/v1/instance/service-accounts/default/token":
            return self.answer(404, b"not found", [("Metadata-Flavor", "Google")])
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.answer(403, b"Missing Metadata-Flavor:Google header.", [("Metadata-Flavor", "Google")])
        body = {"access_token": issue("md"), "expires_in": 3599, "token_type": "Bearer"}
        return self.answer(200, body, [("Metadata-Flavor", "Google")])


class Storage(Handler):
    """The emulator behind bearer tokens."""

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        record("requests", "storage GET " + self.path + " auth=" + auth.split(" ")[0])
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        with lock:
            known = token in issued
        if not known:
            return self.answer(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
        if self.path.startswith("/storage/v1/b/forbidden/"):
            msg = "sa@test.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object."
            return self.answer(403, {"error": {"code": 403, "message": msg}})
        try:
            resp = urllib.request.urlopen("http://127.0.0.1:%d%s" % (args.emulator_port, self.path))
            status, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        return self.answer(status, data)


def serve(handler):
    s = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s.server_address[1]


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--public-key", required=True)
    p.add_argument("--client-email", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--refresh-token", required=True)
    args = p.parse_args()
    emulator = create_server("127.0.0.1", 0, in_memory=True)
    emulator.start()
    args.emulator_port = emulator._api._httpd.server_address[1]
    ports = {"emulator": args.emulator_port, "storage": serve(Storage), "google": serve(Google)}
    print(json.dumps(ports), flush=True)
    sys.stdin.read()
    emulator.stop()


if __name__ == "__main__":
    main()
