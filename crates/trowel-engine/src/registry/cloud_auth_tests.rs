//! Unit tests of `cloud_auth.rs`: host matching, the ECR endpoint and token, and the ACR
//! exchange against a fake Entra and registry, every secret masked.

use super::*;

fn ecr(id: &str, region: &str, fips: bool, china: bool) -> Option<CloudRegistry> {
    Some(CloudRegistry::Ecr(EcrRegistry { id: id.into(), region: region.into(), fips, china }))
}

#[test]
fn hosts_are_matched_as_the_helpers_match_them() {
    assert_eq!(
        cloud_registry("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ecr("123456789012", "eu-west-1", false, false)
    );
    assert_eq!(
        cloud_registry("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
        ecr("123456789012", "us-gov-west-1", true, false)
    );
    assert_eq!(
        cloud_registry("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
        ecr("123456789012", "cn-north-1", false, true)
    );
    // The port is not part of the match.
    assert_eq!(
        cloud_registry("123456789012.dkr.ecr.us-east-1.amazonaws.com:5000"),
        ecr("123456789012", "us-east-1", false, false)
    );
    for not_ecr in [
        "dkr.ecr.us-east-1.amazonaws.com",
        "a.b.dkr.ecr.us-east-1.amazonaws.com",
        "123.dkr.ecr..amazonaws.com",
        "123.dkr.ecr.us-east-1.amazonaws.com.evil.example",
        "123.dkr.ecr.us-east-1.amazonaws.co",
        "public.ecr.aws",
        "s3.amazonaws.com",
        "registry.example:5000",
    ] {
        assert_eq!(cloud_registry(not_ecr), None, "{not_ecr}");
    }
    for google in ["gcr.io", "eu.gcr.io", "europe-west1-docker.pkg.dev", "us-docker.pkg.dev:443", "x.google.com"] {
        assert_eq!(cloud_registry(google), Some(CloudRegistry::Google), "{google}");
    }
    for not_google in ["gcr.io.example", "notgcr.io", "pkg.dev.example", "docker.io", "google.com.evil"] {
        assert_eq!(cloud_registry(not_google), None, "{not_google}");
    }
    for acr in ["myreg.azurecr.io", "myreg.azurecr.cn:443", "r.azurecr.de", "r.azurecr.us"] {
        assert_eq!(cloud_registry(acr), Some(CloudRegistry::Acr), "{acr}");
    }
    for not_acr in ["azurecr.io", "x.azurecr.io.example", "mcr.microsoft.com"] {
        assert_eq!(cloud_registry(not_acr), None, "{not_acr}");
    }
}

#[test]
fn ecr_endpoints() {
    let r = |host: &str| match cloud_registry(host) {
        Some(CloudRegistry::Ecr(r)) => r,
        other => panic!("{other:?}"),
    };
    let none: &Lookup = &|_| None;
    assert_eq!(
        ecr_endpoint(none, &r("1.dkr.ecr.eu-west-1.amazonaws.com")).0,
        "https://api.ecr.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        ecr_endpoint(none, &r("1.dkr.ecr.cn-north-1.amazonaws.com.cn")).0,
        "https://api.ecr.cn-north-1.amazonaws.com.cn"
    );
    assert_eq!(
        ecr_endpoint(none, &r("1.dkr.ecr-fips.us-east-2.amazonaws.com")).0,
        "https://ecr-fips.us-east-2.amazonaws.com"
    );
    let both: &Lookup = &|k| match k {
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:1".into()),
        "AWS_ENDPOINT_URL_ECR" => Some("ecr.local".into()),
        _ => None,
    };
    assert_eq!(
        ecr_endpoint(both, &r("1.dkr.ecr.eu-west-1.amazonaws.com")),
        ("https://ecr.local".into(), Some("AWS_ENDPOINT_URL_ECR"))
    );
}

/// No AWS credentials at all: an error that says what to set, before any request.
#[test]
fn an_ecr_host_without_aws_credentials_says_what_to_set() {
    let env: &Lookup = &|k| (k == "HOME").then(|| "/nonexistent".to_string());
    let r = EcrRegistry { id: "1".into(), region: "eu-west-1".into(), fips: false, china: false };
    let mut secrets = Vec::new();
    let e = ecr_login(env, "1.dkr.ecr.eu-west-1.amazonaws.com", &r, &mut secrets).unwrap_err();
    assert!(e.contains("no AWS credentials were found: set AWS_ACCESS_KEY_ID"), "{e}");
    assert!(e.contains("AWS_WEB_IDENTITY_TOKEN_FILE (IRSA)"), "{e}");
}

/// Off Google Cloud with no credentials: anonymous, so public images still pull.
#[test]
fn no_google_credentials_is_anonymous() {
    let env: &Lookup = &|k| match k {
        "HOME" => Some("/nonexistent".into()),
        _ => None,
    };
    let mut secrets = Vec::new();
    if resolves("http://metadata.google.internal") {
        return; // on Google Cloud: the metadata server is the credential
    }
    assert_eq!(google_login(env, "gcr.io", &mut secrets).unwrap(), None);
}

/// Answers each request on 127.0.0.1 with `answer(request line, body)`; returns the base URL
/// and what it was sent (request line and body, in order).
fn serve(
    n: usize,
    answer: fn(&str, &str) -> (&'static str, String),
) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..n {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let k = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..k]);
                let text = String::from_utf8_lossy(&got).to_string();
                let Some(i) = text.find("\r\n\r\n") else { continue };
                let len: usize = text
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .map_or(0, |v| v.parse().unwrap());
                if k == 0 || got.len() >= i + 4 + len {
                    break (text[..i].to_string(), text[i + 4..].to_string());
                }
            };
            let line = head.lines().next().unwrap_or_default().to_string();
            let (status, out) = answer(&line, &body);
            write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{out}",
                out.len()
            )
            .unwrap();
            seen.push((line, body));
        }
        seen
    });
    (url, h)
}

fn acr_env(authority: String, extra: &'static [(&'static str, &'static str)]) -> Arc<Lookup> {
    Arc::new(move |k: &str| match k {
        "AZURE_AUTHORITY_HOST" => Some(authority.clone()),
        _ => extra.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()),
    })
}

/// A service principal's secret: an Entra token for ARM, exchanged at the registry for a
/// refresh token, which becomes the identity token; every value masked.
#[test]
fn acr_service_principal_is_exchanged_for_a_refresh_token() {
    let (url, server) = serve(2, |line, _| {
        if line.starts_with("POST /tenant-x/oauth2/v2.0/token ") {
            ("200 OK", r#"{"token_type":"Bearer","expires_in":3599,"access_token":"entra-arm-token"}"#.into())
        } else if line.starts_with("POST /oauth2/exchange ") {
            ("200 OK", r#"{"refresh_token":"acr-refresh-token"}"#.into())
        } else {
            ("404 Not Found", "{}".into())
        }
    });
    let env = acr_env(
        url.clone(),
        &[("AZURE_CLIENT_ID", "cid"), ("AZURE_TENANT_ID", "tenant-x"), ("AZURE_CLIENT_SECRET", "sp-secret-value")],
    );
    let mut secrets = Vec::new();
    let c = acr_login(&*env, "myreg.azurecr.io", &url, &mut secrets).unwrap();
    assert_eq!(c, Some(Credential::IdentityToken(Secret::new("acr-refresh-token"))));
    for s in ["sp-secret-value", "entra-arm-token", "acr-refresh-token"] {
        assert!(secrets.iter().any(|x| x == s), "{s} not masked: {secrets:?}");
    }
    let seen = server.join().unwrap();
    let mut token_form: Vec<&str> = seen[0].1.split('&').collect();
    token_form.sort();
    assert_eq!(
        token_form,
        [
            "client_id=cid",
            "client_secret=sp-secret-value",
            "grant_type=client_credentials",
            "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
        ]
    );
    let mut exchange: Vec<&str> = seen[1].1.split('&').collect();
    exchange.sort();
    assert_eq!(
        exchange,
        ["access_token=entra-arm-token", "grant_type=access_token", "service=myreg.azurecr.io", "tenant=tenant-x"]
    );
}

#[test]
fn acr_refusals_and_missing_values_say_what_to_check() {
    // No Azure credentials at all: anonymous.
    let none = acr_env("http://127.0.0.1:1".into(), &[]);
    assert_eq!(acr_login(&*none, "r.azurecr.io", "http://127.0.0.1:1", &mut Vec::new()).unwrap(), None);
    // Half of them: what is missing.
    let half = acr_env("http://127.0.0.1:1".into(), &[("AZURE_CLIENT_SECRET", "s3cr3t-value")]);
    let e = acr_login(&*half, "r.azurecr.io", "http://127.0.0.1:1", &mut Vec::new()).unwrap_err();
    assert!(e.contains("AZURE_CLIENT_SECRET is set, but AZURE_CLIENT_ID and AZURE_TENANT_ID must be set too"), "{e}");
    // The registry refuses the token: the role to check, no value.
    let (url, _server) = serve(2, |line, _| {
        if line.contains("/oauth2/v2.0/token") {
            ("200 OK", r#"{"access_token":"entra-arm-token"}"#.into())
        } else {
            ("401 Unauthorized", r#"{"errors":[{"code":"UNAUTHORIZED","message":"identity not allowed"}]}"#.into())
        }
    });
    let env = acr_env(
        url.clone(),
        &[("AZURE_CLIENT_ID", "cid"), ("AZURE_TENANT_ID", "t"), ("AZURE_CLIENT_SECRET", "s3cr3t-value")],
    );
    let e = acr_login(&*env, "r.azurecr.io", &url, &mut Vec::new()).unwrap_err();
    assert!(e.contains("refused the Entra token of client cid (HTTP 401: identity not allowed)"), "{e}");
    assert!(e.contains("AcrPush") && !e.contains("s3cr3t") && !e.contains("entra-arm-token"), "{e}");
}
