"""An https file server on 127.0.0.1 for tests/context_https.rs (Python's http.server in TLS):
serves the files of DIR, prints its port, and answers like the servers a context URL points at:

  /private/NAME            only with basic auth USER:PASSWORD (else 401)
  /signed/NAME?...         only when the query's X-Amz-Signature is SIGNATURE (else 403)
  /to-http/NAME            302 to http://127.0.0.1:HTTP_PORT/NAME (a downgrade)
  /dated/NAME              the file with `Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT`
  /NAME                    the file, or 404

    server.py DIR CERT KEY USER PASSWORD SIGNATURE HTTP_PORT
"""
import base64
import http.server
import os
import ssl
import sys
import urllib.parse

root, cert, key, user, password, signature, http_port = sys.argv[1:8]
expected_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        path = u.path
        if path.startswith("/private/"):
            if self.headers.get("Authorization") != expected_auth:
                return self.answer(401, b"authentication required", [("WWW-Authenticate", 'Basic realm="ctx"')])
            path = path[len("/private"):]
        elif path.startswith("/signed/"):
            q = urllib.parse.parse_qs(u.query)
            if q.get("X-Amz-Signature") != [signature]:
                return self.answer(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
            path = path[len("/signed"):]
        dated = path.startswith("/dated/")
        if dated:
            path = path[len("/dated"):]
        if path.startswith("/to-http/"):
            return self.answer(302, headers=[("Location", f"http://127.0.0.1:{http_port}{path[len('/to-http'):]}")])
        f = os.path.join(root, os.path.basename(path))
        if not os.path.isfile(f):
            return self.answer(404, b"no such file here")
        headers = [("Content-Type", "application/octet-stream")]
        if dated:
            headers.append(("Last-Modified", "Tue, 02 Jan 2024 03:04:05 GMT"))
        with open(f, "rb") as fh:
            self.answer(200, fh.read(), headers)

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
