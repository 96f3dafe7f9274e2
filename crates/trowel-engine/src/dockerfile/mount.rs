//! `RUN --mount=…` specifications, with BuildKit's grammar and rules (moby/buildkit
//! `frontend/dockerfile/instructions/commands_runmount.go`).
//!
//! A value is one CSV record of `key=value` fields (quotes allowed, `""` escapes a quote) plus
//! the bare flags `ro`/`readonly`, `rw`/`readwrite` and `required`. `type` defaults to `bind`;
//! bind and secret/ssh mounts are read-only unless `rw`, cache and tmpfs mounts writable unless
//! `ro`.
//!
//! Like BuildKit, a value is checked twice: as written, when the Dockerfile is planned (so a
//! misspelt option or type fails before anything is pulled), leaving fields whose value holds a
//! variable for later; and whole, after variable expansion, when the step runs.

use std::fmt;

/// The mount types of the Dockerfile reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub const ALL: [MountType; 5] =
        [MountType::Bind, MountType::Cache, MountType::Tmpfs, MountType::Secret, MountType::Ssh];

    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sharing {
    /// Every user sees the same directory at once (the default).
    #[default]
    Shared,
    /// A user that finds it in use gets a new directory of its own.
    Private,
    /// A user waits until the one using it is done.
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One `--mount`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: MountType,
    /// `from=`: a stage, an image or a named context (bind, cache).
    pub from: Option<String>,
    /// `source=`/`src=`: the path in `from` (bind, cache) or the secret's id (secret).
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`: where it appears (relative to WORKDIR if relative).
    pub target: Option<String>,
    pub read_only: bool,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<u64>,
    /// `id=`: a cache's, secret's or ssh agent's id.
    pub id: Option<String>,
    pub sharing: Sharing,
    /// `required`: a missing secret or ssh agent is an error (otherwise the mount is skipped).
    pub required: bool,
    /// `env=`: a secret exposed as this environment variable (as well as, or instead of, a file).
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

impl MountSpec {
    /// Parses a `--mount` value whose variables have been expanded.
    pub fn parse(value: &str) -> Result<MountSpec, String> {
        Parser { deferred: false }.parse(value).map(|m| m.expect("nothing is deferred after expansion"))
    }

    /// Checks a `--mount` value as written, before variables are expanded: everything but the
    /// fields whose value holds a variable. (`from` never takes a variable, as in BuildKit.)
    pub fn check_unexpanded(value: &str) -> Result<(), String> {
        Parser { deferred: true }.parse(value).map(|_| ())
    }

    /// The mount as BuildKit would write it back (all options, in a fixed order): what a cache
    /// key and the debugger show.
    pub fn canonical(&self) -> String {
        let mut out = vec![format!("type={}", self.kind)];
        let mut kv = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                // CSV quotes a whole field, never a value after its `=`.
                out.push(quote(&format!("{k}={v}")));
            }
        };
        kv("id", self.id.clone());
        kv("from", self.from.clone());
        kv("source", self.source.clone());
        kv("target", self.target.clone());
        kv("env", self.env.clone());
        kv("size", self.size.map(|s| s.to_string()));
        kv("mode", self.mode.map(|m| format!("{m:o}")));
        kv("uid", self.uid.map(|u| u.to_string()));
        kv("gid", self.gid.map(|g| g.to_string()));
        if self.kind == MountType::Cache {
            out.push(format!("sharing={}", self.sharing.as_str()));
        }
        out.push(if self.read_only { "ro".into() } else { "rw".into() });
        if self.required {
            out.push("required".into());
        }
        out.join(",")
    }
}

/// A CSV field needs quotes when it holds a comma or a quote.
fn quote(v: &str) -> String {
    if v.contains([',', '"']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}

struct Parser {
    /// Before expansion: fields whose value holds a variable are left for later.
    deferred: bool,
}

impl Parser {
    /// `Ok(None)`: checked as far as it could be before expansion.
    fn parse(&self, value: &str) -> Result<Option<MountSpec>, String> {
        let fields = csv_fields(value)?;
        let mut m = MountSpec {
            kind: MountType::Bind,
            from: None,
            source: None,
            target: None,
            read_only: false,
            size: None,
            id: None,
            sharing: Sharing::Shared,
            required: false,
            env: None,
            mode: None,
            uid: None,
            gid: None,
        };
        let mut sharing_set = false;
        let mut ro_auto = true;
        let mut incomplete = false;
        for field in &fields {
            let Some((key, value)) = field.split_once('=') else {
                match field.to_ascii_lowercase().as_str() {
                    "readonly" | "ro" => {
                        m.read_only = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.read_only = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => m.required = true,
                    // Before expansion the type may still be a variable.
                    "required" if self.deferred && incomplete => {}
                    "required" => return Err(format!("unexpected key 'required' for mount type '{}'", m.kind)),
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unexpected key '{key}' in '{field}' (one of {})",
                    KEYS.iter()
                        .filter(|k| !matches!(**k, "src" | "dst" | "destination" | "ro" | "rw" | "readwrite"))
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if self.deferred && value.contains('$') {
                if key == "from" && value.find('$').is_some_and(|i| i != value.len() - 1) {
                    return Err(format!("'{key}' doesn't support variable expansion, define alias stage instead"));
                }
                incomplete = true;
                continue;
            }
            let bool_of = |v: &str| parse_bool(v).ok_or_else(|| format!("invalid value for {key}: {v}"));
            match key.as_str() {
                "type" => {
                    m.kind = MountType::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(value)).ok_or_else(
                        || format!("unsupported mount type \"{value}\" (one of bind, cache, tmpfs, secret, ssh)"),
                    )?;
                }
                "from" => m.from = Some(value.to_string()),
                "source" | "src" => m.source = Some(value.to_string()),
                "target" | "dst" | "destination" => m.target = Some(value.to_string()),
                "readonly" | "ro" => {
                    m.read_only = bool_of(value)?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = !bool_of(value)?;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = bool_of(value)?;
                    } else if !(self.deferred && incomplete) {
                        return Err(format!("unexpected key 'required' for mount type '{}'", m.kind));
                    }
                }
                "size" => {
                    if m.kind == MountType::Tmpfs {
                        m.size = Some(ram_in_bytes(value).ok_or_else(|| format!("invalid value for size: {value}"))?);
                    } else if !(self.deferred && incomplete) {
                        return Err(format!("unexpected key 'size' for mount type '{}'", m.kind));
                    }
                }
                "id" => m.id = Some(value.to_string()),
                "sharing" => {
                    m.sharing = match value.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => {
                            return Err(format!(
                                "unsupported sharing value \"{value}\" (one of shared, private, locked)"
                            ));
                        }
                    };
                    sharing_set = true;
                }
                "mode" => {
                    m.mode = Some(u32::from_str_radix(value, 8).map_err(|_| format!("invalid value {value} for mode"))?)
                }
                "uid" => m.uid = Some(value.parse().map_err(|_| format!("invalid value {value} for uid"))?),
                "gid" => m.gid = Some(value.parse().map_err(|_| format!("invalid value {value} for gid"))?),
                "env" => m.env = Some(value.to_string()),
                _ => unreachable!("every key of KEYS is handled"),
            }
        }
        if incomplete {
            return Ok(None);
        }
        if !matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
            for (name, set) in [("mode", m.mode.is_some()), ("uid", m.uid.is_some()), ("gid", m.gid.is_some())] {
                if set {
                    return Err(format!("{name} not allowed for \"{}\" type mounts", m.kind));
                }
            }
        }
        if ro_auto {
            m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
        }
        if m.kind == MountType::Secret {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if sharing_set {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        // Known without WORKDIR: an absolute target that is the root itself (BuildKit refuses it
        // when the step runs; relative targets are resolved then).
        if let Some(t) = m.target.as_deref().filter(|t| t.starts_with('/'))
            && t.split('/').all(|c| matches!(c, "" | "." | ".."))
        {
            return Err("invalid mount target \"/\"".into());
        }
        if sharing_set && m.kind != MountType::Cache {
            return Err(format!("invalid cache sharing set for {} mount", m.kind));
        }
        // `env` on another type is read and ignored, as BuildKit's `parseMount` does (it checks
        // only `required` and `size` against the type).
        if m.kind != MountType::Secret {
            m.env = None;
        }
        // `size` and `required` are checked against the type as it stood when they were read;
        // a later `type=` (BuildKit lets the last one win) must not leave one on a mount type
        // that has no such option, where BuildKit silently drops it (found by fuzzing).
        if m.size.is_some() && m.kind != MountType::Tmpfs {
            return Err(format!("unexpected key 'size' for mount type '{}'", m.kind));
        }
        if m.required && !matches!(m.kind, MountType::Secret | MountType::Ssh) {
            return Err(format!("unexpected key 'required' for mount type '{}'", m.kind));
        }
        Ok(Some(m))
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units' `RAMInBytes`: a number with an optional binary unit (`k`, `m`, `g`, `t`,
/// `p`, with an optional `b` or `ib`; any case): `64m`, `1.5g`, `1024`.
pub fn ram_in_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024f64.powi(2),
        "g" | "gb" | "gib" => 1024f64.powi(3),
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = n * mult;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The fields of one CSV record (RFC 4180: a field may be quoted, `""` is a quote in a quoted
/// field), as Go's `encoding/csv` reads `--mount` values.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => {
                out.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            (false, '"') if at_start => quoted = true,
            (false, '"') => return Err(format!("failed to parse csv mounts: bare \" in non-quoted field in {s:?}")),
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => {
                quoted = false;
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err(format!("failed to parse csv mounts: extraneous \" in field in {s:?}"));
                }
            }
            (_, c) => field.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err(format!("failed to parse csv mounts: unterminated quote in {s:?}"));
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_buildkit() {
        let b = MountSpec::parse("target=/src").unwrap();
        assert_eq!((b.kind, b.read_only), (MountType::Bind, true));
        let c = MountSpec::parse("type=cache,target=/root/.cache/pip").unwrap();
        assert_eq!((c.kind, c.read_only, c.sharing), (MountType::Cache, false, Sharing::Shared));
        let rw = MountSpec::parse("type=bind,source=.,target=/src,rw").unwrap();
        assert!(!rw.read_only);
        let t = MountSpec::parse("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(t.size, Some(64 << 20));
        let s = MountSpec::parse("type=secret,id=npmrc,target=/root/.npmrc,mode=0400,uid=1000,required").unwrap();
        assert_eq!(
            (s.id.as_deref(), s.mode, s.uid, s.required, s.read_only),
            (Some("npmrc"), Some(0o400), Some(1000), true, true)
        );
        let e = MountSpec::parse("type=secret,id=TOKEN,env=TOKEN").unwrap();
        assert_eq!(e.env.as_deref(), Some("TOKEN"));
        let l = MountSpec::parse("type=cache,id=apt,target=/var/cache/apt,sharing=locked").unwrap();
        assert_eq!(l.sharing, Sharing::Locked);
        let q = MountSpec::parse("type=bind,\"source=a,b\",target=/x").unwrap();
        assert_eq!(q.source.as_deref(), Some("a,b"));
    }

    #[test]
    fn bad_values_are_refused_with_buildkits_words() {
        for (value, want) in [
            ("type=volume,target=/x", "unsupported mount type \"volume\""),
            ("type=cache,target=/x,colour=red", "unexpected key 'colour'"),
            ("type=cache,target=/x,sharing=sometimes", "unsupported sharing value \"sometimes\""),
            ("type=bind,target=/x,mode=0700", "mode not allowed for \"bind\" type mounts"),
            ("type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"),
            ("type=cache,target=/x,size=1g", "unexpected key 'size' for mount type 'cache'"),
            ("type=tmpfs,target=/x,size=1g,type=cache", "unexpected key 'size' for mount type 'cache'"),
            ("type=secret,id=a,required,type=bind,target=/x", "unexpected key 'required' for mount type 'bind'"),
            ("type=tmpfs,target=/x,size=lots", "invalid value for size: lots"),
            ("type=secret,from=x,id=a", "secret mount should not have a from"),
            ("type=secret", "invalid secret mount. one of source, target required"),
            ("type=secret,id=a,source=b", "both source and id can't be set"),
            ("type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"),
            ("type=cache,target=/x,ro=maybe", "invalid value for ro: maybe"),
            ("type=cache,target=/x,uid=me", "invalid value me for uid"),
            ("type=tmpfs,target=/./", "invalid mount target \"/\""),
            ("target", "invalid field 'target' must be a key=value pair"),
            ("\"type=cache", "unterminated quote"),
            ("type=\"cache", "bare \" in non-quoted field"),
        ] {
            let err = MountSpec::parse(value).unwrap_err();
            assert!(err.contains(want), "{value}: {err}");
        }
    }

    #[test]
    fn before_expansion_only_what_is_known_is_checked() {
        assert!(MountSpec::check_unexpanded("type=cache,target=$HOME/.cache,id=${ID}").is_ok());
        assert!(MountSpec::check_unexpanded("type=$T,target=/x,size=1g,required").is_ok());
        assert!(MountSpec::check_unexpanded("type=cache,target=$HOME,colour=red").is_err());
        assert!(MountSpec::check_unexpanded("type=cache,from=$STAGE,target=/x").unwrap_err().contains("alias stage"));
        assert!(MountSpec::check_unexpanded("type=volume,target=/x").is_err());
    }

    #[test]
    fn canonical_form_round_trips() {
        for v in [
            "type=cache,id=apt,target=/var/cache/apt,sharing=locked,mode=0755,uid=1",
            "type=bind,from=build,source=/out,target=/in",
            "type=secret,id=tok,env=TOKEN,required",
            "type=tmpfs,target=/t,size=1k",
            // A value with a comma or a quote: CSV quotes the whole field (a fuzzing finding).
            r#""type=bind","target=/a,b","source=x""y""#,
        ] {
            let m = MountSpec::parse(v).unwrap();
            assert_eq!(MountSpec::parse(&m.canonical()).unwrap(), m, "{v} -> {}", m.canonical());
        }
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        assert_eq!(ram_in_bytes("1k"), Some(1024));
        assert_eq!(ram_in_bytes("1.5GB"), Some(3 << 29));
        assert_eq!(ram_in_bytes("2MiB"), Some(2 << 20));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
