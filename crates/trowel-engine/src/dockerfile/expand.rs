//! Expanding an instruction's variables, with Docker's rules on what expands.
//!
//! ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG defaults are
//! expanded, and so are the values of `--from --chown --chmod --platform --checksum` and RUN's
//! `--mount`; `--exclude` is not (as in BuildKit). RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are not (the shell does it);
//! neither are ONBUILD triggers (they expand when they run) nor MAINTAINER. COPY/ADD heredoc
//! bodies expand when their delimiter was not quoted; RUN heredoc bodies never do.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::error::DockerfileError;
use super::flags;
use super::heredoc;
use super::lex::Lexer;
use super::types::{CommandForm, CopyArgs, CopySource, Flag, Heredoc, Instruction, InstructionKind};

/// A variable scope for expansion.
pub trait Vars {
    /// The value of `name`, `None` when unset.
    fn get(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> Vars for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Vars for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The empty scope.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoVars;

impl Vars for NoVars {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

/// `top` shadows `base`.
pub(crate) struct Overlay<'a> {
    pub top: &'a BTreeMap<String, String>,
    pub base: &'a dyn Vars,
}

impl Vars for Overlay<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.top.get(name).cloned().or_else(|| self.base.get(name))
    }
}

/// An instruction with its variables resolved, ready for the build engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expanded {
    From {
        image: String,
        platform: Option<String>,
        alias: Option<String>,
    },
    /// RUN flags are recorded as written, except `--mount` values, which are expanded.
    Run {
        flags: Vec<Flag>,
        script: RunScript,
    },
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Shell(Vec<String>),
    Copy(ExpandedCopy),
    Add(ExpandedCopy),
    Env(Vec<(String, String)>),
    /// Names and expanded defaults. Prefer [`ArgScope::apply`](super::ArgScope::apply), which
    /// also applies `--build-arg` values and global values.
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    /// Normalised `port/proto` entries (`80/tcp`); ranges are expanded to single ports.
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Stopsignal(String),
    /// `None` is `HEALTHCHECK NONE` (the config gets `Test: ["NONE"]`).
    Healthcheck(Option<Healthcheck>),
    /// The trigger text as it goes into the image config's `OnBuild`.
    Onbuild(String),
    Maintainer(String),
}

/// What a RUN executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunScript {
    /// Run as `SHELL + [this]`. For `RUN cmd <<EOF` and several heredocs this is the command line
    /// followed by each body and delimiter, so the shell handles the heredocs itself.
    Shell(String),
    /// Exec form: run as is.
    Exec(Vec<String>),
    /// `RUN <<EOF` alone: the body runs with the shell (`SHELL + [content]`), or, when it starts
    /// with `#!`, is written to a file and executed.
    Script { content: String, shebang: bool },
}

/// COPY/ADD with everything resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandedCopy {
    pub from: Option<String>,
    pub chown: Option<String>,
    /// A validated mode as written, octal or symbolic (`0755`, `u=rwX,go=rX`; `crate::chmod`).
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    /// `ADD --unpack`: `None` when not given (a local archive is extracted, a downloaded one
    /// is not), else whether to extract either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<bool>,
    pub sources: Vec<ExpandedSource>,
    pub dest: String,
}

/// One resolved COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExpandedSource {
    Path(String),
    /// An inline file named after its delimiter.
    Heredoc {
        name: String,
        content: String,
    },
}

/// A HEALTHCHECK configuration; absent or zero durations are `None` (runtime defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval_ns: Option<u64>,
    pub timeout_ns: Option<u64>,
    pub start_period_ns: Option<u64>,
    pub start_interval_ns: Option<u64>,
    pub retries: Option<u64>,
}

impl Instruction {
    /// Resolves the instruction's variables against `vars`, with `escape` as the escape
    /// character (the Dockerfile's [`escape`](super::Dockerfile::escape)). For FROM, `vars` are
    /// the global ARGs; inside a stage, the stage's ENV and declared ARGs.
    pub fn expand(&self, vars: &dyn Vars, escape: char) -> Result<Expanded, DockerfileError> {
        let lex = Lexer::new(escape);
        let word = |s: &str| lex.process_word(s, vars).map_err(|e| self.error(e));
        Ok(match &self.kind {
            InstructionKind::From { image, platform, alias } => {
                let expanded = word(image)?;
                if expanded.is_empty() {
                    return Err(self.error(format!("base name ({image}) should not be blank")));
                }
                let platform = platform.as_deref().map(|p| expand_platform(self, p, &word)).transpose()?;
                Expanded::From { image: expanded, platform, alias: alias.clone() }
            }
            InstructionKind::Run { flags, command, heredocs } => {
                let flags = flags
                    .iter()
                    .map(|f| match (&f.value, f.name.as_str()) {
                        (Some(v), "mount") => Ok(Flag { name: f.name.clone(), value: Some(word(v)?) }),
                        _ => Ok(f.clone()),
                    })
                    .collect::<Result<_, DockerfileError>>()?;
                Expanded::Run { flags, script: run_script(command, heredocs) }
            }
            InstructionKind::Cmd(c) => Expanded::Cmd(c.clone()),
            InstructionKind::Entrypoint(c) => Expanded::Entrypoint(c.clone()),
            InstructionKind::Shell(s) => Expanded::Shell(s.clone()),
            InstructionKind::Copy(args) => Expanded::Copy(self.expand_copy(args, vars, &word)?),
            InstructionKind::Add(args) => Expanded::Add(self.expand_copy(args, vars, &word)?),
            InstructionKind::Env(pairs) => Expanded::Env(self.expand_pairs(pairs, &word)?),
            InstructionKind::Label(pairs) => Expanded::Label(self.expand_pairs(pairs, &word)?),
            InstructionKind::Arg(pairs) => {
                // Each default sees the values of the ARGs before it on the same line (BuildKit
                // declares them one at a time).
                let mut declared = BTreeMap::new();
                let mut out = Vec::with_capacity(pairs.len());
                for (name, default) in pairs {
                    let value = match default {
                        Some(d) => {
                            let v = lex
                                .process_word(d, &Overlay { top: &declared, base: vars })
                                .map_err(|e| self.error(e))?;
                            declared.insert(name.clone(), v.clone());
                            Some(v)
                        }
                        None => None,
                    };
                    out.push((name.clone(), value));
                }
                Expanded::Arg(out)
            }
            InstructionKind::Expose(ports) => {
                let mut out = Vec::new();
                for raw in ports {
                    for port in lex.process_words(raw, vars).map_err(|e| self.error(e))? {
                        out.extend(parse_port(&port).map_err(|e| self.error(e))?);
                    }
                }
                Expanded::Expose(out)
            }
            InstructionKind::Volume(volumes) => {
                let mut out = Vec::with_capacity(volumes.len());
                for v in volumes {
                    let v = word(v)?;
                    if v.trim().is_empty() {
                        return Err(self.error("VOLUME specified can not be an empty string"));
                    }
                    out.push(v);
                }
                Expanded::Volume(out)
            }
            InstructionKind::User(u) => Expanded::User(word(u)?),
            InstructionKind::Workdir(w) => Expanded::Workdir(word(w)?),
            InstructionKind::Stopsignal(s) => {
                let s = word(s)?;
                check_signal(&s).map_err(|e| self.error(e))?;
                Expanded::Stopsignal(s)
            }
            InstructionKind::Healthcheck { flags, command } => {
                Expanded::Healthcheck(healthcheck(flags, command.as_ref()).map_err(|e| self.error(e))?)
            }
            InstructionKind::Onbuild(trigger) => Expanded::Onbuild(trigger.source.clone()),
            InstructionKind::Maintainer(m) => Expanded::Maintainer(m.clone()),
        })
    }

    fn expand_pairs(
        &self,
        pairs: &[(String, String)],
        word: &dyn Fn(&str) -> Result<String, DockerfileError>,
    ) -> Result<Vec<(String, String)>, DockerfileError> {
        // Every word sees the variables as they were before the instruction.
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = word(k)?;
            if key.is_empty() {
                return Err(self.error(format!("{} names can not be blank", self.keyword())));
            }
            out.push((key, word(v)?));
        }
        Ok(out)
    }

    fn expand_copy(
        &self,
        args: &CopyArgs,
        vars: &dyn Vars,
        word: &dyn Fn(&str) -> Result<String, DockerfileError>,
    ) -> Result<ExpandedCopy, DockerfileError> {
        let opt = |name: &str| flags::str_flag(&args.flags, name).map(word).transpose();
        // `--chown`/`--chmod` that expand to nothing are ignored, as BuildKit ignores them.
        let chmod = opt("chmod")?.filter(|m| !m.is_empty());
        if let Some(mode) = &chmod {
            flags::check_chmod(mode).map_err(|e| self.error(e))?;
        }
        // One that expands to nothing is none, as in BuildKit (`ARG C=` then `--checksum=$C`).
        let checksum = opt("checksum")?.filter(|c| !c.is_empty());
        let from = opt("from")?;
        if from.as_deref() == Some("") {
            return Err(self.error("--from must not be empty"));
        }
        // `--exclude` patterns are taken as written: BuildKit's `CopyCommand.Expand` leaves them
        // out (moby/buildkit#6072 asks for expansion; until then `$PAT` is a literal pattern).
        let excludes: Vec<String> = flags::multi_flag(&args.flags, "exclude").map(str::to_string).collect();
        // Heredoc bodies are expanded without quote processing and always with `\` as escape.
        let body_lex = Lexer { skip_process_quotes: true, ..Lexer::new('\\') };
        let mut sources = Vec::with_capacity(args.sources.len());
        for source in &args.sources {
            sources.push(match source {
                CopySource::Path(p) => ExpandedSource::Path(word(p)?),
                CopySource::Heredoc(h) => {
                    let body = h.body();
                    let content =
                        if h.expand { body_lex.process_word(&body, vars).map_err(|e| self.error(e))? } else { body };
                    ExpandedSource::Heredoc { name: h.delimiter.clone(), content }
                }
            });
        }
        if let Some(sum) = &checksum {
            let paths: Vec<&str> = sources
                .iter()
                .filter_map(|s| match s {
                    ExpandedSource::Path(p) => Some(p.as_str()),
                    ExpandedSource::Heredoc { .. } => None,
                })
                .collect();
            flags::check_add_checksum(sum, &paths).map_err(|e| self.error(e))?;
        }
        Ok(ExpandedCopy {
            from,
            chown: opt("chown")?.filter(|c| !c.is_empty()),
            chmod,
            link: flags::bool_flag(&args.flags, "link"),
            parents: flags::bool_flag(&args.flags, "parents"),
            excludes,
            checksum,
            keep_git_dir: flags::bool_flag(&args.flags, "keep-git-dir"),
            unpack: args.flags.iter().any(|f| f.name == "unpack").then(|| flags::bool_flag(&args.flags, "unpack")),
            sources,
            dest: word(&args.dest)?,
        })
    }
}

fn expand_platform(
    instruction: &Instruction,
    raw: &str,
    word: &dyn Fn(&str) -> Result<String, DockerfileError>,
) -> Result<String, DockerfileError> {
    let p = word(raw)?;
    if p.is_empty() {
        return Err(instruction.error(format!("empty platform value from expression {raw}")));
    }
    Ok(p)
}

/// What RUN executes, per BuildKit: a lone heredoc is a script; otherwise the heredocs are
/// appended to the command line for the shell.
fn run_script(command: &CommandForm, heredocs: &[Heredoc]) -> RunScript {
    match command {
        CommandForm::Exec(args) => RunScript::Exec(args.clone()),
        CommandForm::Shell(cmd) if heredocs.is_empty() => RunScript::Shell(cmd.clone()),
        CommandForm::Shell(cmd) => {
            if matches!(heredoc::parse_marker(cmd), Ok(Some(_))) {
                let content = heredocs[0].body();
                let shebang = content.starts_with("#!");
                return RunScript::Script { content, shebang };
            }
            let mut script = cmd.clone();
            for h in heredocs {
                script.push('\n');
                script.push_str(&h.content);
                script.push_str(&h.delimiter);
            }
            RunScript::Shell(script)
        }
    }
}

/// Builds the HEALTHCHECK config (no variable expansion: Docker does not expand it).
pub(crate) fn healthcheck(flags: &[Flag], command: Option<&CommandForm>) -> Result<Option<Healthcheck>, String> {
    let Some(command) = command else { return Ok(None) };
    let test = match command {
        CommandForm::Exec(args) if args.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        CommandForm::Exec(args) => std::iter::once("CMD".to_string()).chain(args.iter().cloned()).collect(),
        CommandForm::Shell(s) if s.trim().is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        CommandForm::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    Ok(Some(Healthcheck {
        test,
        interval_ns: flags::healthcheck_interval(flags, "interval")?,
        timeout_ns: flags::healthcheck_interval(flags, "timeout")?,
        start_period_ns: flags::healthcheck_interval(flags, "start-period")?,
        start_interval_ns: flags::healthcheck_interval(flags, "start-interval")?,
        retries: flags::healthcheck_retries(flags)?,
    }))
}

/// Parses an EXPOSE entry (`80`, `80/udp`, `8000-8002/tcp`, even `ip:host:container`) into
/// `port/proto` strings, as BuildKit does.
pub(crate) fn parse_port(raw: &str) -> Result<Vec<String>, String> {
    // `[ip:][hostPort:]containerPort[/proto]`, split as BuildKit's `splitParts` does; the IP and
    // host port are only checked (BuildKit checks them too, then keeps the container port).
    let parts: Vec<&str> = raw.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("".to_string(), "", *c),
        [h, c] => ("".to_string(), *h, *c),
        [rest @ .., h, c] => (rest.join(":"), *h, *c),
        [] => unreachable!("split yields one part at least"),
    };
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(format!("invalid port {raw:?}: no port specified"));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "" => "tcp".to_string(),
        p @ ("tcp" | "udp" | "sctp") => p.to_string(),
        _ => return Err(format!("invalid port {raw:?}: invalid proto: {proto}")),
    };
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 65535)
            .ok_or_else(|| format!("invalid port {raw:?}: invalid containerPort: {port}"))
    };
    let range = |p: &str, number: &dyn Fn(&str) -> Result<u32, String>| -> Result<(u32, u32), String> {
        let (start, end) = match p.split_once('-') {
            Some((a, b)) if a != b => (number(a)?, number(b)?),
            Some((a, _)) => (number(a)?, number(a)?),
            None => (number(p)?, number(p)?),
        };
        if end < start {
            return Err(format!("invalid port {raw:?}: invalid port range: {p}"));
        }
        Ok((start, end))
    };
    let (start, end) = range(port, &number)?;
    let bare_ip = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(&ip);
    if !ip.is_empty() && bare_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid port {raw:?}: invalid IP address: {ip}"));
    }
    if !host.is_empty() {
        let host_number = |s: &str| -> Result<u32, String> {
            s.parse::<u32>().ok().filter(|n| *n <= 65535).ok_or_else(|| format!("invalid hostPort: {host}"))
        };
        let (hs, he) = range(host, &host_number).map_err(|_| format!("invalid hostPort: {host}"))?;
        if he - hs != end - start && end != start {
            return Err(format!("invalid ranges specified for container and host Ports: {port} and {host}"));
        }
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// Linux signal names accepted by STOPSIGNAL (without the `SIG` prefix).
const SIGNALS: [&str; 36] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
    "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// Validates a STOPSIGNAL value as BuildKit's `signal.ParseSignal` does: any integer but 0
/// (Go's `Atoi`: `65` and `-1` are taken), or a name of its Linux signal map, with or without
/// `SIG`, in any case (`SIGTERM`, `term`, `SIGRTMIN+3`; not `RTMIN+03`, which is no key of it).
pub(crate) fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<i64>() {
        return if n != 0 { Ok(()) } else { Err(format!("invalid signal: {s}")) };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |prefix: &str, max: u8| {
        name.strip_prefix(prefix)
            .filter(|n| !n.starts_with(['0', '+', '-']))
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=max).contains(&n))
    };
    let valid = SIGNALS.contains(&name) || offset("RTMIN+", 15) || offset("RTMAX-", 14);
    if valid { Ok(()) } else { Err(format!("invalid signal: {s}")) }
}

#[cfg(test)]
#[path = "expand_tests.rs"]
mod tests;
