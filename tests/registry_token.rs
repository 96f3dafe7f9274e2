//! Bearer-token registries: docker-registry with `auth: token`, and a small token server
//! (Python, RS256 JWTs with an `x5c` chain) started by this test. Covers username/password
//! token requests, identity tokens exchanged with the OAuth2 refresh-token grant, multi-scope
//! tokens for cross-repository mounts, and errors that name the token server but never the
//! secret.

mod common;
#[path = "registry_util/mod.rs"]
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trowel_engine::digest::Digest;
use trowel_engine::image::manifest::{ManifestFormat, Platform};
use trowel_engine::image::store::BlobStore;
use trowel_engine::registry::{BlobAction, Reference, Registry, RegistryOptions};
use util::{opts, rt, tiny_image};

const USER: &str = "token-user";
const PASSWORD: &str = "token-Pa55word";
const REFRESH: &str = "refresh-TOKEN-0123456789";

const TOKEN_SERVER: &str = r#"
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

port, key_path, cert_path, user, password, refresh, log_path = sys.argv[1:8]
key = open(key_path, 'rb').read()
cert = x509.load_pem_x509_certificate(open(cert_path, 'rb').read())
x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]

def token(service, scopes, sub):
    access = []
    for s in scopes:
        for one in s.split(' '):
            typ, name, actions = one.split(':')
            access.append({'type': typ, 'name': name, 'actions': actions.split(',')})
    now = int(time.time())
    claims = {'iss': 'trowel-test-issuer', 'sub': sub, 'aud': service, 'exp': now + 300,
              'nbf': now - 10, 'iat': now, 'jti': str(uuid.uuid4()), 'access': access}
    return jwt.encode(claims, key, algorithm='RS256', headers={'x5c': x5c})

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log(self, line):
        with open(log_path, 'a') as f: f.write(line + '\n')
    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        scopes = q.get('scope', [])
        auth = self.headers.get('Authorization', '')
        kind = 'anonymous'
        if auth.startswith('Basic '):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(':')
            if (u, p) != (user, password):
                self.log('GET denied')
                return self.reply(401, {'errors': [{'code': 'UNAUTHORIZED', 'message': 'invalid username or password'}]})
            kind = 'basic'
        self.log('GET %s %s' % (kind, ' '.join(sorted(scopes))))
        granted = scopes if kind == 'basic' else []
        self.reply(200, {'token': token(q['service'][0], granted, user if kind == 'basic' else ''), 'expires_in': 300})
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        form = parse_qs(self.rfile.read(n).decode())
        if form.get('grant_type') != ['refresh_token'] or form.get('refresh_token') != [refresh]:
            self.log('POST denied')
            return self.reply(400, {'error': 'invalid_grant', 'error_description': 'unknown refresh token'})
        scopes = form.get('scope', [''])[0].split(' ')
        self.log('POST refresh_token %s client_id=%s' % (' '.join(sorted(scopes)), form.get('client_id', [''])[0]))
        self.reply(200, {'access_token': token(form['service'][0], scopes, user), 'expires_in': 300, 'refresh_token': refresh})

ThreadingHTTPServer(('127.0.0.1', int(port)), H).serve_forever()
"#;

/// A token-auth registry and its token server; both stop when this is dropped.
struct TokenRegistry {
    host: String,
    log: PathBuf,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "port {port} did not open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start() -> TokenRegistry {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = common::run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=trowel token signer",
        "-keyout",
        d.join("key.pem").to_str().unwrap(),
        "-out",
        d.join("cert.pem").to_str().unwrap(),
    ]));
    common::assert_ok(&o);
    std::fs::write(d.join("token_server.py"), TOKEN_SERVER).unwrap();
    let log = d.join("token.log");
    let (tport, rport) = (free_port(), free_port());
    // Debian's python3, which has python3-jwt and python3-cryptography.
    let server = Command::new("/usr/bin/python3")
        .arg(d.join("token_server.py"))
        .args([&tport.to_string(), d.join("key.pem").to_str().unwrap(), d.join("cert.pem").to_str().unwrap()])
        .args([USER, PASSWORD, REFRESH, log.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{rport}\n  secret: trowel-token-test\nauth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: trowel-test-service\n    issuer: trowel-test-issuer\n    rootcertbundle: {cert}\n",
        data = d.join("data").display(),
        cert = d.join("cert.pem").display(),
    );
    std::fs::write(d.join("registry.yml"), config).unwrap();
    let registry = Command::new("docker-registry")
        .arg("serve")
        .arg(d.join("registry.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("registry.log")).unwrap())
        .spawn()
        .unwrap();
    let reg = TokenRegistry { host: format!("127.0.0.1:{rport}"), log, children: vec![server, registry], _dir: dir };
    wait_for_port(tport);
    wait_for_port(rport);
    reg
}

fn client(cfg_dir: &Path, entry: serde_json::Value, host: &str) -> Registry {
    let cfg = serde_json::json!({ "auths": { host: entry } });
    std::fs::write(cfg_dir.join("config.json"), cfg.to_string()).unwrap();
    Registry::new(RegistryOptions { docker_config: Some(cfg_dir.to_path_buf()), retries: 0, ..opts() }).unwrap()
}

fn log_lines(t: &TokenRegistry) -> Vec<String> {
    std::fs::read_to_string(&t.log).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn token_registry_end_to_end() {
    let t = start();
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let img = tiny_image(&store, ManifestFormat::Oci, "behind a token server", ("amd64", None), 2048);

    // Username and password: a token per scope, fetched with GET and Basic auth.
    let cfg = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let reg = client(cfg.path(), serde_json::json!({ "auth": auth }), &t.host);
    let base = Reference::parse(&format!("{}/team/base:1", t.host)).unwrap();
    rt.block_on(reg.check_push_access(&base)).unwrap();
    rt.block_on(reg.push_image(&base, &img.push, &store, &|_| {})).unwrap();
    assert!(log_lines(&t).contains(&"GET basic repository:team/base:pull,push".to_string()), "{:?}", log_lines(&t));

    // Cross-repository mount: one token covering both repositories.
    let mut push = img.push.clone();
    for b in &mut push.blobs {
        b.mount_from = Some(base.clone());
    }
    let app = Reference::parse(&format!("{}/team/app:1", t.host)).unwrap();
    let report = rt.block_on(reg.push_image(&app, &push, &store, &|_| {})).unwrap();
    assert!(report.blobs.iter().all(|(_, a, _)| *a == BlobAction::Mounted), "{report:?}");
    assert!(
        log_lines(&t).contains(&"GET basic repository:team/app:pull,push repository:team/base:pull".to_string()),
        "{:?}",
        log_lines(&t)
    );

    // A streamed upload (the layer cache's) to a repository with no token yet: the POST that
    // opens it gets the token, and the chunked PATCH (which cannot be sent twice) uses it.
    let streamed = Reference::parse(&format!("{}/team/streamed:1", t.host)).unwrap();
    let data = vec![9u8; 700_000];
    let digest = Digest::of(&data);
    assert_eq!(util::upload_streamed(&reg, &streamed, &data, 50_000, Some(digest.clone())).unwrap(), digest);
    assert!(rt.block_on(reg.blob_exists(&streamed, &digest)).unwrap());

    // Identity token: exchanged with the refresh-token grant (POST), then used for pull.
    let cfg2 = tempfile::tempdir().unwrap();
    let reg2 = client(cfg2.path(), serde_json::json!({ "identitytoken": REFRESH }), &t.host);
    let back = rt.block_on(reg2.resolve(&app, &amd64)).unwrap();
    assert_eq!(back.manifest_digest, report.manifest_digest);
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = BlobStore::open(pulled_dir.path()).unwrap();
    rt.block_on(reg2.fetch_blob(&app, &img.layer, &pulled, &|_, _| {})).unwrap();
    assert!(
        log_lines(&t).contains(&"POST refresh_token repository:team/app:pull client_id=trowel".to_string()),
        "{:?}",
        log_lines(&t)
    );

    // A wrong identity token: the token server's refusal, without the token.
    let cfg3 = tempfile::tempdir().unwrap();
    let bad_token = "not-the-REFRESH-token-xyz";
    let reg3 = client(cfg3.path(), serde_json::json!({ "identitytoken": bad_token }), &t.host);
    let e = rt.block_on(reg3.resolve(&app, &amd64)).unwrap_err();
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    assert!(shown.starts_with(&format!("pull {app}: token server 127.0.0.1 refused: ")), "{shown}");
    assert!(shown.contains("unknown refresh token") || shown.contains("invalid_grant"), "{shown}");
    assert!(!shown.contains(bad_token) && !debug.contains(bad_token), "{shown} / {debug}");

    // A wrong password: same, and the password does not leak.
    let cfg4 = tempfile::tempdir().unwrap();
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong-Secret-77"));
    let reg4 = client(cfg4.path(), serde_json::json!({ "auth": wrong }), &t.host);
    let e = rt.block_on(reg4.check_push_access(&app)).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "check push access to {app}: token server 127.0.0.1 refused: unauthorized: invalid username or password"
        )
    );
    assert!(!e.contains("wrong-Secret-77"));

    // Anonymous: the token grants nothing and the registry says so.
    let anon = Registry::new(RegistryOptions { retries: 0, ..opts() }).unwrap();
    let e = rt.block_on(anon.resolve(&app, &amd64)).unwrap_err().to_string();
    assert!(e.starts_with(&format!("pull {app}: unauthorized: ")), "{e}");
}
