//! Which `--flags` each instruction accepts, and the value syntaxes that are checked:
//! booleans, `--chmod` (octal or symbolic, `crate::chmod`), Go durations for HEALTHCHECK,
//! `--checksum` digests (or commit prefixes, for git sources).

use super::types::{Flag, Keyword};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// `--flag=value`, at most once.
    Str,
    /// `--flag=value`, repeatable.
    Multi,
}

fn spec(keyword: Keyword) -> &'static [(&'static str, Kind)] {
    use Kind::*;
    match keyword {
        Keyword::From => &[("platform", Str)],
        Keyword::Run => &[("mount", Multi), ("network", Str), ("security", Str)],
        Keyword::Copy => {
            &[("from", Str), ("chown", Str), ("chmod", Str), ("link", Bool), ("parents", Bool), ("exclude", Multi)]
        }
        Keyword::Add => &[
            ("chown", Str),
            ("chmod", Str),
            ("link", Bool),
            ("checksum", Str),
            ("keep-git-dir", Bool),
            ("unpack", Bool),
            ("exclude", Multi),
        ],
        Keyword::Healthcheck => {
            &[("interval", Str), ("timeout", Str), ("start-period", Str), ("start-interval", Str), ("retries", Str)]
        }
        _ => &[],
    }
}

/// Checks `flags` against what `keyword` accepts, with BuildKit's messages.
pub(crate) fn validate(keyword: Keyword, flags: &[Flag]) -> Result<(), String> {
    let allowed = spec(keyword);
    let mut seen: Vec<&str> = Vec::new();
    for flag in flags {
        let Some(&(_, kind)) = allowed.iter().find(|(name, _)| *name == flag.name) else {
            let hint = if allowed.is_empty() {
                format!(" ({keyword} accepts no flags)")
            } else {
                let names: Vec<String> = allowed.iter().map(|(n, _)| format!("--{n}")).collect();
                format!(" ({keyword} accepts {})", names.join(", "))
            };
            return Err(format!("unknown flag: --{}{hint}", flag.name));
        };
        if kind != Kind::Multi && seen.contains(&flag.name.as_str()) {
            return Err(format!("duplicate flag specified: --{}", flag.name));
        }
        seen.push(&flag.name);
        match (kind, flag.value.as_deref()) {
            (Kind::Bool, None) => {}
            (Kind::Bool, Some(v)) => {
                parse_bool(&flag.name, v)?;
            }
            (_, None) => return Err(format!("missing a value on flag: --{}", flag.name)),
            (_, Some(_)) => {}
        }
    }
    Ok(())
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Err(format!("missing a value on flag: --{name}")),
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expecting boolean value for flag --{name}, not: {value}")),
    }
}

/// The value of a (validated) boolean flag; absent means `false`.
pub(crate) fn bool_flag(flags: &[Flag], name: &str) -> bool {
    flags.iter().rev().find(|f| f.name == name).is_some_and(|f| match &f.value {
        None => true,
        Some(v) => parse_bool(name, v).unwrap_or(false),
    })
}

/// The value of a single-valued flag.
pub(crate) fn str_flag<'a>(flags: &'a [Flag], name: &str) -> Option<&'a str> {
    flags.iter().rev().find(|f| f.name == name).and_then(|f| f.value.as_deref())
}

/// All values of a repeatable flag, in order.
pub(crate) fn multi_flag<'a>(flags: &'a [Flag], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    flags.iter().filter(move |f| f.name == name).filter_map(|f| f.value.as_deref())
}

/// Validates a `--chmod` value: an octal mode up to `7777`, or a symbolic one (`u=rwX,go=rX`).
pub(crate) fn check_chmod(value: &str) -> Result<(), String> {
    crate::chmod::Chmod::parse(value).map(drop)
}

/// Validates `ADD --checksum` for its sources (BuildKit's rules): one source, either a URL
/// download (a digest, see [`check_checksum`]) or a git repository (a hex prefix of the commit).
pub fn check_add_checksum(value: &str, path_sources: &[&str]) -> Result<(), String> {
    let [src] = path_sources else { return Err("checksum can't be specified for multiple sources".into()) };
    if super::gitref::is_git_source(src) {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("invalid checksum {value} for Git URL, expected hex commit hash"));
        }
        return Ok(());
    }
    if !(src.starts_with("http://") || src.starts_with("https://")) {
        return Err("checksum requires HTTP(S) or Git sources".into());
    }
    check_checksum(value)
}

/// `--chown` with ids only (`root` is 0, as BuildKit reads it): all `COPY --link` can use, since
/// it cannot look names up in the image. A user alone gives its id as the group too.
pub fn link_chown_ids(spec: &str) -> Option<(u32, u32)> {
    let id = |s: &str| if s == "root" { Some(0) } else { s.parse::<u32>().ok() };
    match spec.split_once(':') {
        Some((u, g)) if !g.is_empty() => Some((id(u)?, id(g)?)),
        Some((u, _)) => id(u).map(|u| (u, u)),
        None => id(spec).map(|u| (u, u)),
    }
}

/// Why `--link --chown=<name>` cannot work (BuildKit refuses it as well).
pub fn link_chown_error(spec: &str) -> String {
    format!(
        "--chown={spec} names a user or group, which --link cannot look up (a --link step does not see the \
         image's /etc/passwd and /etc/group, as in BuildKit): use numeric ids, or drop --link"
    )
}

/// Validates an `ADD --checksum` digest (`sha256:`, `sha384:` or `sha512:` and hex).
pub(crate) fn check_checksum(value: &str) -> Result<(), String> {
    let valid = value.split_once(':').is_some_and(|(algo, hex)| {
        let len = match algo {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return false,
        };
        hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid --checksum value {value:?}: expected sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>"
        ))
    }
}

/// A HEALTHCHECK interval flag: `None` when absent or zero (the runtime default), an error below
/// one millisecond, as BuildKit.
pub(crate) fn healthcheck_interval(flags: &[Flag], name: &str) -> Result<Option<u64>, String> {
    let Some(value) = str_flag(flags, name) else { return Ok(None) };
    if value.is_empty() {
        return Ok(None);
    }
    let ns = crate::duration::parse_nanos(value).map_err(|e| format!("--{name}: {e}"))?;
    if ns == 0 {
        return Ok(None);
    }
    if ns < 1_000_000 {
        return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
    }
    Ok(Some(ns as u64))
}

/// The HEALTHCHECK `--retries` flag: `None` when absent or zero.
pub(crate) fn healthcheck_retries(flags: &[Flag]) -> Result<Option<u64>, String> {
    let Some(value) = str_flag(flags, "retries") else { return Ok(None) };
    if value.is_empty() {
        return Ok(None);
    }
    let n: i64 = value.parse().map_err(|_| format!("--retries: invalid number {value:?}"))?;
    if n < 0 {
        return Err(format!("--retries cannot be negative ({n})"));
    }
    if n > i64::from(i32::MAX) {
        return Err(format!("--retries: value {n} out of range"));
    }
    Ok((n > 0).then_some(n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, value: Option<&str>) -> Flag {
        Flag { name: name.into(), value: value.map(Into::into) }
    }

    #[test]
    fn per_instruction_flags() {
        assert!(
            validate(
                Keyword::Copy,
                &[f("from", Some("a")), f("link", None), f("exclude", Some("x")), f("exclude", Some("y"))]
            )
            .is_ok()
        );
        assert_eq!(
            validate(Keyword::Copy, &[f("checksum", Some("x"))]).unwrap_err(),
            "unknown flag: --checksum (COPY accepts --from, --chown, --chmod, --link, --parents, --exclude)"
        );
        assert_eq!(
            validate(Keyword::Env, &[f("x", Some("1"))]).unwrap_err(),
            "unknown flag: --x (ENV accepts no flags)"
        );
        assert_eq!(
            validate(Keyword::Copy, &[f("from", Some("a")), f("from", Some("b"))]).unwrap_err(),
            "duplicate flag specified: --from"
        );
        assert_eq!(validate(Keyword::Copy, &[f("from", None)]).unwrap_err(), "missing a value on flag: --from");
        assert_eq!(validate(Keyword::Add, &[f("link", Some(""))]).unwrap_err(), "missing a value on flag: --link");
        assert_eq!(
            validate(Keyword::Add, &[f("link", Some("yes"))]).unwrap_err(),
            "expecting boolean value for flag --link, not: yes"
        );
        assert!(
            validate(
                Keyword::Run,
                &[f("mount", Some("type=cache,target=/c")), f("mount", Some("type=tmpfs,target=/t"))]
            )
            .is_ok()
        );
        assert!(validate(Keyword::Healthcheck, &[f("interval", Some("5s")), f("retries", Some("3"))]).is_ok());
    }

    #[test]
    fn bools() {
        let flags = [f("link", None), f("parents", Some("FALSE")), f("keep-git-dir", Some("True"))];
        assert!(bool_flag(&flags, "link"));
        assert!(!bool_flag(&flags, "parents"));
        assert!(bool_flag(&flags, "keep-git-dir"));
        assert!(!bool_flag(&flags, "absent"));
    }

    #[test]
    fn chmod() {
        assert!(check_chmod("755").is_ok());
        assert!(check_chmod("0644").is_ok());
        assert!(check_chmod("7777").is_ok());
        assert!(check_chmod("17777").is_err());
        assert!(check_chmod("0o755").is_err());
        assert!(check_chmod("u+x").is_ok());
        assert!(check_chmod("u=rwX,go=rX").is_ok());
        assert!(check_chmod("u+y").is_err());
        assert!(check_chmod("").is_err());
        assert!(check_chmod("89").is_err());
    }

    #[test]
    fn link_chown() {
        assert_eq!(link_chown_ids("1000"), Some((1000, 1000)));
        assert_eq!(link_chown_ids("1000:50"), Some((1000, 50)));
        assert_eq!(link_chown_ids("root"), Some((0, 0)));
        assert_eq!(link_chown_ids("7:root"), Some((7, 0)));
        assert_eq!(link_chown_ids("7:"), Some((7, 7)));
        assert_eq!(link_chown_ids("app"), None);
        assert_eq!(link_chown_ids("1000:staff"), None);
    }

    #[test]
    fn checksum_for_its_source() {
        let sha = format!("sha256:{}", "a".repeat(64));
        assert!(check_add_checksum(&sha, &["https://h/f.tgz"]).is_ok());
        assert!(check_add_checksum("be1f38e", &["https://h/r.git#v1"]).is_ok());
        assert!(check_add_checksum("BE1F38E", &["git@h:r.git"]).is_ok());
        for (v, srcs, err) in [
            ("be1f38e", &["https://h/f.tgz"][..], "invalid --checksum value \"be1f38e\""),
            (sha.as_str(), &["https://h/r.git"][..], "invalid checksum sha256:"),
            ("abc", &["https://h/a.git", "https://h/b.git"][..], "checksum can't be specified for multiple sources"),
            ("abc", &[][..], "checksum can't be specified for multiple sources"),
            ("abc", &["local.tar"][..], "checksum requires HTTP(S) or Git sources"),
        ] {
            let e = check_add_checksum(v, srcs).unwrap_err();
            assert!(e.starts_with(err), "{v} {srcs:?}: {e}");
        }
    }

    #[test]
    fn checksum() {
        assert!(check_checksum(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_checksum(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(check_checksum(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check_checksum("sha256:abc").is_err());
        assert!(check_checksum(&format!("md5:{}", "a".repeat(32))).is_err());
    }

    #[test]
    fn healthcheck_values() {
        let flags = [f("interval", Some("30s")), f("timeout", Some("0s")), f("start-period", Some("100us"))];
        assert_eq!(healthcheck_interval(&flags, "interval").unwrap(), Some(30_000_000_000));
        assert_eq!(healthcheck_interval(&flags, "timeout").unwrap(), None);
        assert_eq!(healthcheck_interval(&flags, "start-interval").unwrap(), None);
        assert_eq!(
            healthcheck_interval(&flags, "start-period").unwrap_err(),
            "Interval \"start-period\" cannot be less than 1ms"
        );
        assert_eq!(healthcheck_retries(&[f("retries", Some("3"))]).unwrap(), Some(3));
        assert_eq!(healthcheck_retries(&[f("retries", Some("-1"))]).unwrap_err(), "--retries cannot be negative (-1)");
        assert!(healthcheck_retries(&[f("retries", Some("x"))]).is_err());
    }
}
