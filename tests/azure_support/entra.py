"""A stand-in for Microsoft Entra ID's token endpoint on 127.0.0.1, for the workload-identity test
of tests/context_azure.rs: checks the client-credentials request with a JWT client assertion as
Entra does (client, assertion, scope, grant), and answers with an access token that Azurite's
OAuth check accepts (issuer https://sts.windows.net/TENANT/, audience https://storage.azure.com,
valid now). Prints its port.

    entra.py TENANT CLIENT_ID ASSERTION
"""
import base64
import http.server
import json
import sys
import time
import urllib.parse

tenant, client_id, assertion = sys.argv[1:4]


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != f"/{tenant}/oauth2/v2.0/token":
            return self.answer(404, {"error": "not_found"})
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        one = lambda k: form.get(k, [""])[0]
        if one("client_id") != client_id:
            return self.answer(400, {"error": "unauthorized_client",
                                     "error_description": "AADSTS700016: Application not found in the directory."})
        if (one("grant_type") != "client_credentials"
                or one("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                or one("client_assertion") != assertion
                or one("scope") != "https://storage.azure.com/.default"):
            return self.answer(400, {"error": "invalid_client",
                                     "error_description": "AADSTS700212: No matching federated identity record."})
        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
                  "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "oid": client_id, "tid": tenant}
        token = b64({"typ": "JWT", "alg": "RS256"}) + "." + b64(claims) + "." + "c2lnbmF0dXJl"
        self.answer(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token})

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
