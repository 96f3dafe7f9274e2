//! The AWS shared files, as the SDKs read them: `~/.aws/credentials`
//! (`AWS_SHARED_CREDENTIALS_FILE`) with `[NAME]` sections, and `~/.aws/config`
//! (`AWS_CONFIG_FILE`) with `[default]` and `[profile NAME]`; the profile is `AWS_PROFILE`
//! (`default` when unset). A key in the credentials file wins over the same key in the config
//! file, as in the SDKs. Only what an S3 download needs is read: static keys, the region, and a
//! web identity role (`role_arn` + `web_identity_token_file`).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One profile's settings, merged from both files.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    pub name: String,
    /// Where the profile's keys were found (for messages): a file's path.
    pub file: Option<PathBuf>,
    values: BTreeMap<String, String>,
}

impl Profile {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Reads the profile `AWS_PROFILE` names (or `default`) from the shared files. A file that
/// does not exist is no error (most pods have none); one that cannot be read is.
pub(crate) fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Profile, String> {
    let name = env("AWS_PROFILE").filter(|p| !p.is_empty()).unwrap_or_else(|| "default".into());
    let home = env("HOME").unwrap_or_default();
    let path = |var: &str, default: &str| match env(var).filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(expand_home(&p, &home))),
        None => (!home.is_empty()).then(|| PathBuf::from(&home).join(default)),
    };
    let mut profile = Profile { name: name.clone(), ..Profile::default() };
    // Config first, credentials over it.
    for (file, section) in [
        (
            path("AWS_CONFIG_FILE", ".aws/config"),
            if name == "default" { name.clone() } else { format!("profile {name}") },
        ),
        (path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"), name.clone()),
    ] {
        let Some(file) = file else { continue };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("read {}: {e}", file.display())),
        };
        let values = section_of(&text, &section);
        if values.contains_key("aws_access_key_id") || profile.file.is_none() && !values.is_empty() {
            profile.file = Some(file.clone());
        }
        profile.values.extend(values);
    }
    Ok(profile)
}

fn expand_home(p: &str, home: &str) -> String {
    match p.strip_prefix("~/") {
        Some(rest) if !home.is_empty() => format!("{home}/{rest}"),
        _ => p.to_string(),
    }
}

/// The `key = value` lines of `[section]` (names and keys compared as the SDKs do: the section
/// name trimmed, keys lowercased). Comments (`#`, `;`) and nested sub-sections (indented lines
/// under a key without a value, e.g. `s3 =`) are skipped.
fn section_of(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    let mut nested = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            nested = false;
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with([' ', '\t']) && nested {
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            nested = v.is_empty();
            if !nested {
                out.insert(k, v.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_from_both_files_credentials_winning() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(
            d.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n\n[profile ci]\nregion=us-west-2\ns3 =\n  addressing_style = path\n\
             aws_access_key_id = FROMCONFIG\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join(".aws/credentials"),
            "# keys\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s/k+1\n\n\
             [ ci ]\naws_access_key_id=AKIDCI\naws_secret_access_key = ci-secret\n",
        )
        .unwrap();
        let home = d.path().to_str().unwrap().to_string();
        let env = |profile: Option<&'static str>| {
            let home = home.clone();
            move |k: &str| match k {
                "HOME" => Some(home.clone()),
                "AWS_PROFILE" => profile.map(str::to_string),
                _ => None,
            }
        };
        let p = load(&env(None)).unwrap();
        assert_eq!((p.get("aws_access_key_id"), p.get("region")), (Some("AKIDDEFAULT"), Some("eu-west-1")));
        assert_eq!(p.get("aws_secret_access_key"), Some("s/k+1"));
        assert_eq!(p.file.as_deref(), Some(d.path().join(".aws/credentials").as_path()));
        let p = load(&env(Some("ci"))).unwrap();
        assert_eq!(p.name, "ci");
        assert_eq!(p.get("aws_access_key_id"), Some("AKIDCI"), "the credentials file wins");
        assert_eq!(p.get("region"), Some("us-west-2"));
        assert_eq!(p.get("addressing_style"), None, "a nested sub-section is not the profile's");
        let p = load(&env(Some("nope"))).unwrap();
        assert_eq!((p.get("aws_access_key_id"), p.file.as_ref()), (None, None));
        // No files at all: an empty profile, no error.
        let none = |k: &str| (k == "HOME").then(|| "/nonexistent".to_string());
        assert!(load(&none).unwrap().get("region").is_none());
    }
}
