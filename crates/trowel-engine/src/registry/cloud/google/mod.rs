//! Google Cloud: Application Default Credentials (`credentials.rs`) and a service account's
//! signed assertion (`jwt.rs`). Used by `gs://` contexts and by the registry keychain's login
//! to Container Registry and Artifact Registry.

pub(crate) mod credentials;
pub(crate) mod jwt;

/// The `error.message` of a JSON API error document, or the text itself, as one printable line
/// of at most 200 characters.
pub(crate) fn error_message(body: &str) -> String {
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = &v["error"];
            // The JSON API: {"error": {"message": …}}; OAuth: {"error": "…", "error_description": …}.
            match (e["message"].as_str(), e.as_str(), v["error_description"].as_str()) {
                (Some(m), _, _) => Some(m.to_string()),
                (None, Some(code), Some(d)) => Some(format!("{code}: {d}")),
                (None, Some(code), None) => Some(code.to_string()),
                _ => None,
            }
        })
        .unwrap_or_else(|| body.to_string());
    super::one_line(&msg)
}

/// A URL on this machine's loopback, where plain http cannot be overheard.
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    host == "localhost" || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
