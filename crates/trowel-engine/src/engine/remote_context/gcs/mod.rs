//! `gs://BUCKET/OBJECT` (and kaniko's `--bucket`): an archive in Google Cloud Storage, kaniko's
//! `pkg/buildcontext/gcs.go`. The object is downloaded with the JSON API's media GET
//! (`/storage/v1/b/BUCKET/o/OBJECT?alt=media`) and unpacked as it arrives (`http.rs`, `tar.rs`).
//!
//! Spoken as plain HTTP rather than through a Rust Google client: the context needs one GET and
//! a token, and the Rust clients (google-cloud-storage, gcloud-sdk) bring gRPC or a second HTTP
//! and TLS stack and a large compile for it (README, "gs://"). Credentials are found as Google's
//! client libraries find them (`credentials.rs`); `STORAGE_EMULATOR_HOST`, the variable those
//! libraries read, points at an emulator and means no authentication, as it does for them.
//! `TROWEL_GCS_ENDPOINT` points at another endpoint *with* credentials (a Private Service
//! Connect endpoint); plain http is refused there except on this machine's loopback, where a
//! bearer token cannot be overheard.

use std::path::{Path, PathBuf};

use super::{ContextError, ContextKind, ContextOrigin, FetchOptions, ObjectSource, tar};
use crate::registry::cloud::google::credentials::{self, Credentials};
use crate::registry::cloud::google::{error_message, is_loopback};
use crate::registry::cloud::http::{Client, ClientOptions, Request, Response, percent_encoded};

/// Google's JSON API endpoint.
const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";

/// Where the JSON API is, and whether requests carry credentials.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    /// Scheme, host and port, no trailing `/`.
    base: String,
    /// `STORAGE_EMULATOR_HOST`: an emulator, no credentials.
    emulator: bool,
}

impl Endpoint {
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, String> {
        let set = |k: &str| env(k).map(|v| v.trim().trim_end_matches('/').to_string()).filter(|v| !v.is_empty());
        if let Some(host) = set("STORAGE_EMULATOR_HOST") {
            // As Google's Go library reads it: a URL, or a host:port spoken to over http.
            let base = if host.contains("://") { host } else { format!("http://{host}") };
            return Ok(Endpoint { base, emulator: true });
        }
        let Some(base) = set("TROWEL_GCS_ENDPOINT") else {
            return Ok(Endpoint { base: DEFAULT_ENDPOINT.into(), emulator: false });
        };
        let url = reqwest::Url::parse(&base).map_err(|e| format!("TROWEL_GCS_ENDPOINT={base:?} is not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            _ => {
                return Err(format!(
                    "TROWEL_GCS_ENDPOINT={base}: an access token is sent there, so it must be https:// \
                     (plain http only on 127.0.0.1 or localhost); for an emulator without credentials set \
                     STORAGE_EMULATOR_HOST instead"
                ));
            }
        }
        Ok(Endpoint { base, emulator: false })
    }

    /// The media GET of one object: bucket and object each one percent-encoded path segment.
    fn media_url(&self, bucket: &str, object: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}?alt=media", self.base, percent_encoded(bucket), percent_encoded(object))
    }
}

pub(super) fn fetch(
    src: &ObjectSource,
    dir: &Path,
    opts: &FetchOptions<'_>,
) -> Result<(ContextOrigin, Vec<String>), ContextError> {
    let invalid = |reason: String| ContextError::Invalid { source_: src.shown.clone(), reason };
    let http = |what: &str| {
        let (s, w) = (src.shown.clone(), what.to_string());
        move |source| ContextError::Http { source_: s, what: w, source }
    };
    let endpoint = Endpoint::from_env(opts.env).map_err(invalid)?;
    let client_opts = ClientOptions {
        ca_file: (opts.env)("SSL_CERT_FILE").map(PathBuf::from),
        insecure: false,
        stall_timeout: opts.stall_timeout,
        cancel: opts.cancel(),
    };
    let client = Client::new(&client_opts).map_err(http("make an HTTP client"))?;
    let mut secrets = Vec::new();
    let creds = if endpoint.emulator {
        None
    } else {
        let c = Credentials::find(opts.env).map_err(invalid)?;
        secrets.extend(c.secrets());
        let token = c.access_token(&client, crate::registry::cloud::google::jwt::SCOPE).map_err(|e| match e {
            credentials::TokenError::Refused(reason) => invalid(reason),
            credentials::TokenError::Http { what, source } => {
                ContextError::Http { source_: src.shown.clone(), what, source }
            }
        })?;
        secrets.push(token.clone());
        Some((c, token))
    };
    let url = endpoint.media_url(&src.bucket, &src.key);
    let resp = client
        .send(&|| {
            let r = Request::get(url.as_str());
            Ok(match &creds {
                Some((_, token)) => r.header("authorization", format!("Bearer {token}")),
                None => r,
            })
        })
        .map_err(http("download the archive"))?;
    if !resp.is_success() {
        let used = match &creds {
            Some((c, _)) => c.describe(),
            None => format!("no credentials (STORAGE_EMULATOR_HOST={})", endpoint.base),
        };
        return Err(invalid(refusal(resp, src, &used)));
    }
    let origin = tar::unpack_archive(Box::new(resp.into_reader()), ContextKind::Gcs, dir, &src.shown, opts)?;
    Ok((origin, secrets))
}

/// What a refused download means, and what to check: the store's own words (its JSON error's
/// `message`, as one short line: hostile input too) and which credentials were used.
fn refusal(resp: Response, src: &ObjectSource, used: &str) -> String {
    let status = resp.status;
    let said = error_message(&resp.error_text());
    let said = if said.is_empty() { String::new() } else { format!(": {said}") };
    let (bucket, object) = (&src.bucket, &src.key);
    match status {
        404 => format!(
            "HTTP 404{said}: there is no object {object:?} in the bucket {bucket:?} (or no such bucket): check the \
             names (gs://BUCKET/OBJECT; without an object, or with --bucket BUCKET, the object is context.tar.gz)"
        ),
        401 => format!(
            "HTTP 401{said}: the credentials were not accepted; used: {used}: check that they are current \
             (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, the pod's Workload \
             Identity binding)"
        ),
        403 => format!(
            "HTTP 403{said}: access denied; used: {used}: grant that account storage.objects.get on the bucket \
             {bucket:?} (roles/storage.objectViewer), or set GOOGLE_APPLICATION_CREDENTIALS to a key that has it"
        ),
        _ => format!("the store answered HTTP {status} to the download{said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn endpoints_as_googles_libraries_read_them() {
        let e = Endpoint::from_env(&env(&[])).unwrap();
        assert_eq!(e, Endpoint { base: DEFAULT_ENDPOINT.into(), emulator: false });
        let e = Endpoint::from_env(&env(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")])).unwrap();
        assert_eq!(e, Endpoint { base: "http://127.0.0.1:9023".into(), emulator: true });
        let e = Endpoint::from_env(&env(&[("STORAGE_EMULATOR_HOST", "https://gcs.test:4443/")])).unwrap();
        assert_eq!(e.base, "https://gcs.test:4443");
        let e = Endpoint::from_env(&env(&[("TROWEL_GCS_ENDPOINT", "https://storage-x.p.googleapis.com")])).unwrap();
        assert_eq!(e, Endpoint { base: "https://storage-x.p.googleapis.com".into(), emulator: false });
        assert!(Endpoint::from_env(&env(&[("TROWEL_GCS_ENDPOINT", "http://127.0.0.1:1")])).is_ok());
        let err = Endpoint::from_env(&env(&[("TROWEL_GCS_ENDPOINT", "http://gcs.internal")])).unwrap_err();
        assert!(err.contains("must be https://"), "{err}");
    }

    #[test]
    fn object_names_are_one_encoded_segment() {
        let e = Endpoint { base: "https://h".into(), emulator: false };
        assert_eq!(
            e.media_url("b", "dir/ctx v1+ü.tar.gz"),
            "https://h/storage/v1/b/b/o/dir%2Fctx%20v1%2B%C3%BC.tar.gz?alt=media"
        );
    }

    #[test]
    fn error_documents_become_one_line() {
        let json = r#"{"error":{"code":404,"message":"No such object: b/ctx.tar.gz","errors":[]}}"#;
        assert_eq!(error_message(json), "No such object: b/ctx.tar.gz");
        let oauth = r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(error_message(oauth), "invalid_grant: Invalid JWT Signature.");
        assert_eq!(error_message("<html>\n\x1b[31mno</html>"), "<html> [31mno</html>");
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
    }
}
