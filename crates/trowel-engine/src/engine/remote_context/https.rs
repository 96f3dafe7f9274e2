//! An archive at an `https://` URL that is neither a git repository nor Azure Blob Storage:
//! kaniko's `HTTPSTar` (`pkg/buildcontext/https.go`), and BuildKit's remote tarball context. The
//! archive is downloaded with a GET and unpacked as it arrives (`http.rs`, `tar.rs`).
//!
//! Credentials written in the URL (`https://user:token@host/…`) are sent as basic auth, as Go's
//! HTTP client does for kaniko, and masked everywhere; so is the URL's query (a presigned URL's
//! signature). `SSL_CERT_FILE` adds a CA (a server with a private CA).

use std::path::{Path, PathBuf};

use super::source::percent_decoded;
use super::{ContextError, ContextKind, ContextOrigin, FetchOptions, HttpsSource, tar};
use crate::registry::cloud::http::{Client, ClientOptions, Request};

pub(super) fn fetch(
    src: &HttpsSource,
    dir: &Path,
    opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    let http = |what: &str| {
        let (s, w) = (src.shown.clone(), what.to_string());
        move |source| ContextError::Http { source_: s, what: w, source }
    };
    let mut url = reqwest::Url::parse(&src.url)
        .map_err(|e| ContextError::Invalid { source_: src.shown.clone(), reason: format!("not a URL: {e}") })?;
    let mut secrets = Vec::new();
    let auth = (!url.username().is_empty()).then(|| {
        let user = percent_decoded(url.username());
        let password = url.password().map(percent_decoded).unwrap_or_default();
        (user, password)
    });
    if let Some((user, password)) = &auth {
        secrets.extend([user.clone(), password.clone()].into_iter().filter(|s| s.len() >= 3));
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if let Some(q) = url.query().filter(|q| !q.is_empty()) {
        // A presigned URL's query is its credential: each value is masked wherever it appears.
        secrets.extend(
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(_, v)| v.to_string()).filter(|v| v.len() >= 8),
        );
    }
    let client_opts = ClientOptions {
        ca_file: (opts.env)("SSL_CERT_FILE").map(PathBuf::from),
        insecure: false,
        stall_timeout: opts.stall_timeout,
        cancel: opts.cancel(),
    };
    let client = Client::new(&client_opts).map_err(http("make an HTTP client"))?;
    let resp = client
        .send(&|| {
            let mut r = Request::get(url.as_str());
            if let Some((user, password)) = &auth {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                r = r.header("authorization", format!("Basic {token}"));
            }
            Ok(r)
        })
        .map_err(http("download the archive"))?;
    if !resp.is_success() {
        let status = resp.status;
        // The server's words, as one short line of plain text: they are hostile input too.
        let text = crate::registry::cloud::one_line(&resp.error_text());
        let said = if text.is_empty() { String::new() } else { format!(": {text}") };
        return Err(ContextError::Invalid {
            source_: src.shown.clone(),
            reason: format!("the server answered HTTP {status} to the download{said}"),
        });
    }
    let last_modified = crate::registry::cloud::http::last_modified(&resp.headers);
    let mut origin = tar::unpack_archive(Box::new(resp.into_reader()), ContextKind::Https, dir, &src.shown, opts)?;
    // BuildKit's order: the server's date of the archive, else the newest file in it.
    origin.time = last_modified.or(origin.time);
    Ok((origin, secrets))
}
