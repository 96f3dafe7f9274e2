//! The canonical one-line rendering of an expanded instruction.
//!
//! Used for logs, image history and cache keys, so it must be injective: two different
//! instructions never render the same. Plain words are written as is; a word that is empty,
//! contains whitespace or control characters, or starts with a character that has a meaning here
//! (`"`, `<`, `-`, `[`) is written as a JSON string. Free text at the end of a line (a shell
//! command, a USER value) is written as is unless it contains a control character (a newline of a
//! heredoc, say) or starts with `"` or `<`, in which case it is a JSON string too.

use super::expand::{Expanded, ExpandedCopy, ExpandedSource, Healthcheck, RunScript};
use super::types::{CommandForm, Flag};
use crate::duration::format_go_duration;

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// A list element or flag value.
fn word(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(['"', '<', '-', '['])
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if plain { s.to_string() } else { json(s) }
}

/// Trailing free text.
fn text(s: &str) -> String {
    if s.starts_with(['"', '<']) || s.chars().any(char::is_control) { json(s) } else { s.to_string() }
}

fn command(c: &CommandForm) -> String {
    match c {
        CommandForm::Exec(args) => json_list(args),
        CommandForm::Shell(s) => text(s),
    }
}

fn flag(out: &mut String, name: &str, value: Option<&str>) {
    out.push_str("--");
    out.push_str(name);
    if let Some(v) = value {
        out.push('=');
        out.push_str(&word(v));
    }
    out.push(' ');
}

fn flags(out: &mut String, list: &[Flag]) {
    for f in list {
        flag(out, &f.name, f.value.as_deref());
    }
}

fn pairs(keyword: &str, list: &[(String, String)]) -> String {
    let mut out = keyword.to_string();
    for (k, v) in list {
        out.push(' ');
        out.push_str(&word(k));
        out.push('=');
        out.push_str(&word(v));
    }
    out
}

fn copy(keyword: &str, c: &ExpandedCopy) -> String {
    let mut out = format!("{keyword} ");
    if let Some(v) = &c.from {
        flag(&mut out, "from", Some(v));
    }
    if let Some(v) = &c.chown {
        flag(&mut out, "chown", Some(v));
    }
    if let Some(v) = &c.chmod {
        flag(&mut out, "chmod", Some(v));
    }
    if let Some(v) = &c.checksum {
        flag(&mut out, "checksum", Some(v));
    }
    if let Some(unpack) = c.unpack {
        flag(&mut out, "unpack", Some(if unpack { "true" } else { "false" }));
    }
    for (on, name) in [(c.link, "link"), (c.parents, "parents"), (c.keep_git_dir, "keep-git-dir")] {
        if on {
            flag(&mut out, name, None);
        }
    }
    for e in &c.excludes {
        flag(&mut out, "exclude", Some(e));
    }
    for s in &c.sources {
        match s {
            ExpandedSource::Path(p) => out.push_str(&word(p)),
            ExpandedSource::Heredoc { name, content } => {
                out.push_str("<<");
                out.push_str(&word(name));
                out.push(':');
                out.push_str(&json(content));
            }
        }
        out.push(' ');
    }
    out.push_str(&word(&c.dest));
    out
}

fn healthcheck(h: &Healthcheck) -> String {
    let mut out = "HEALTHCHECK ".to_string();
    let durations = [
        ("interval", h.interval_ns),
        ("timeout", h.timeout_ns),
        ("start-period", h.start_period_ns),
        ("start-interval", h.start_interval_ns),
    ];
    for (name, ns) in durations {
        if let Some(ns) = ns {
            flag(&mut out, name, Some(&format_go_duration(std::time::Duration::from_nanos(ns))));
        }
    }
    if let Some(r) = h.retries {
        flag(&mut out, "retries", Some(&r.to_string()));
    }
    out.push_str("CMD ");
    out.push_str(&json_list(&h.test));
    out
}

impl Expanded {
    /// The instruction keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Expanded::From { .. } => "FROM",
            Expanded::Run { .. } => "RUN",
            Expanded::Cmd(_) => "CMD",
            Expanded::Entrypoint(_) => "ENTRYPOINT",
            Expanded::Shell(_) => "SHELL",
            Expanded::Copy(_) => "COPY",
            Expanded::Add(_) => "ADD",
            Expanded::Env(_) => "ENV",
            Expanded::Arg(_) => "ARG",
            Expanded::Label(_) => "LABEL",
            Expanded::Expose(_) => "EXPOSE",
            Expanded::Volume(_) => "VOLUME",
            Expanded::User(_) => "USER",
            Expanded::Workdir(_) => "WORKDIR",
            Expanded::Stopsignal(_) => "STOPSIGNAL",
            Expanded::Healthcheck(_) => "HEALTHCHECK",
            Expanded::Onbuild(_) => "ONBUILD",
            Expanded::Maintainer(_) => "MAINTAINER",
        }
    }

    /// The canonical one-line rendering (see the module documentation), e.g.
    /// `COPY --from=build --chmod=0755 app /usr/local/bin/`.
    pub fn display(&self) -> String {
        let kw = self.keyword();
        match self {
            Expanded::From { image, platform, alias } => {
                let mut out = "FROM ".to_string();
                if let Some(p) = platform {
                    flag(&mut out, "platform", Some(p));
                }
                out.push_str(&word(image));
                if let Some(a) = alias {
                    out.push_str(" AS ");
                    out.push_str(&word(a));
                }
                out
            }
            Expanded::Run { flags: list, script } => {
                let mut out = "RUN ".to_string();
                flags(&mut out, list);
                match script {
                    RunScript::Shell(s) => out.push_str(&text(s)),
                    RunScript::Exec(args) => out.push_str(&json_list(args)),
                    RunScript::Script { content, .. } => {
                        out.push_str("<<EOF ");
                        out.push_str(&json(content));
                    }
                }
                out
            }
            Expanded::Cmd(c) | Expanded::Entrypoint(c) => format!("{kw} {}", command(c)),
            Expanded::Shell(args) => format!("SHELL {}", json_list(args)),
            Expanded::Copy(c) | Expanded::Add(c) => copy(kw, c),
            Expanded::Env(list) | Expanded::Label(list) => pairs(kw, list),
            Expanded::Arg(list) => {
                let mut out = "ARG".to_string();
                for (k, v) in list {
                    out.push(' ');
                    out.push_str(&word(k));
                    if let Some(v) = v {
                        out.push('=');
                        out.push_str(&word(v));
                    }
                }
                out
            }
            Expanded::Expose(list) | Expanded::Volume(list) => {
                let words: Vec<String> = list.iter().map(|w| word(w)).collect();
                format!("{kw} {}", words.join(" "))
            }
            Expanded::User(s)
            | Expanded::Workdir(s)
            | Expanded::Stopsignal(s)
            | Expanded::Onbuild(s)
            | Expanded::Maintainer(s) => format!("{kw} {}", text(s)),
            Expanded::Healthcheck(None) => "HEALTHCHECK NONE".into(),
            Expanded::Healthcheck(Some(h)) => healthcheck(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_text() {
        assert_eq!(word("plain/path"), "plain/path");
        assert_eq!(word("a b"), "\"a b\"");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("-x"), "\"-x\"");
        assert_eq!(word("<<EOF"), "\"<<EOF\"");
        assert_eq!(text("echo \"hi\" && ls"), "echo \"hi\" && ls");
        assert_eq!(text("a\nb"), "\"a\\nb\"");
        assert_eq!(text("\"quoted\""), "\"\\\"quoted\\\"\"");
    }

    #[test]
    fn renders() {
        let copy = Expanded::Copy(ExpandedCopy {
            from: Some("build".into()),
            chown: None,
            chmod: Some("0755".into()),
            link: true,
            parents: false,
            excludes: vec!["*.md".into()],
            checksum: None,
            keep_git_dir: false,
            unpack: None,
            sources: vec![
                ExpandedSource::Path("a b".into()),
                ExpandedSource::Heredoc { name: "EOF".into(), content: "hi\n".into() },
            ],
            dest: "/app/".into(),
        });
        assert_eq!(
            copy.display(),
            "COPY --from=build --chmod=0755 --link --exclude=*.md \"a b\" <<EOF:\"hi\\n\" /app/"
        );
        let run = Expanded::Run {
            flags: vec![Flag { name: "network".into(), value: Some("none".into()) }],
            script: RunScript::Shell("cat <<EOF\nx\nEOF".into()),
        };
        assert_eq!(run.display(), "RUN --network=none \"cat <<EOF\\nx\\nEOF\"");
        let hc = Expanded::Healthcheck(Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f localhost".into()],
            interval_ns: Some(30_000_000_000),
            timeout_ns: None,
            start_period_ns: None,
            start_interval_ns: None,
            retries: Some(3),
        }));
        assert_eq!(hc.display(), "HEALTHCHECK --interval=30s --retries=3 CMD [\"CMD-SHELL\",\"curl -f localhost\"]");
        let env = Expanded::Env(vec![("A".into(), "1 2".into()), ("B".into(), String::new())]);
        assert_eq!(env.display(), "ENV A=\"1 2\" B=\"\"");
        let from =
            Expanded::From { image: "busybox".into(), platform: Some("linux/amd64".into()), alias: Some("b".into()) };
        assert_eq!(from.display(), "FROM --platform=linux/amd64 busybox AS b");
        assert_eq!(Expanded::Cmd(CommandForm::Exec(vec!["a".into()])).display(), "CMD [\"a\"]");
        assert_eq!(Expanded::Expose(vec!["80/tcp".into(), "53/udp".into()]).display(), "EXPOSE 80/tcp 53/udp");
        assert_eq!(Expanded::Arg(vec![("A".into(), None), ("B".into(), Some("x".into()))]).display(), "ARG A B=x");
    }

    #[test]
    fn injective_on_tricky_inputs() {
        let a = Expanded::Run { flags: vec![], script: RunScript::Shell("a\nb".into()) };
        let b = Expanded::Run { flags: vec![], script: RunScript::Shell("\"a\\nb\"".into()) };
        let c = Expanded::Run { flags: vec![], script: RunScript::Script { content: "a\nb".into(), shebang: false } };
        let d = Expanded::Run { flags: vec![], script: RunScript::Shell("<<EOF \"a\\nb\"".into()) };
        assert_ne!(c.display(), d.display());
        assert_ne!(a.display(), b.display());
        assert_ne!(a.display(), c.display());
        let p1 = Expanded::Volume(vec!["a b".into()]);
        let p2 = Expanded::Volume(vec!["a".into(), "b".into()]);
        assert_ne!(p1.display(), p2.display());
    }
}
