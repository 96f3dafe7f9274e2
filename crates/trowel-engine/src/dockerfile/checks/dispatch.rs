//! The checks BuildKit makes as its dispatcher walks each stage it builds
//! (`dockerfile2llb.dispatch`): the variables every instruction sees (the base image's ENV,
//! then ARG values and ENV in order, a stage built on a stage carrying on from it), the shell,
//! whether a WORKDIR was set, the last CMD, ENTRYPOINT and HEALTHCHECK.
//!
//! Each finding says whether it depends on the base image (a variable it set or did not set, a
//! SHELL it may have): a check made before the base is resolved leaves those out, and
//! [`check_base`](super::check_base) reports exactly those once it is.

use std::collections::BTreeMap;

use super::rules::{self, Rule};
use super::scope::{self, Env, Lookups, Origin};
use super::suggest::closest;
use super::{BaseInfo, CheckConfig, CheckOptions, Finding};
use crate::dockerfile::flags;
use crate::dockerfile::stages::{Base, Plan};
use crate::dockerfile::types::{CopyArgs, CopySource, Dockerfile, Instruction, InstructionKind};
use crate::image::config::DEFAULT_PATH;

/// Build args BuildKit never puts in the environment nor reports undefined.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

pub(super) struct Run<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a CheckOptions<'a>,
    pub plan: &'a Plan,
}

/// A finding of the walk, the stage it is in, and whether the base image decided it.
pub(super) struct Dispatched {
    pub finding: Finding,
    pub base_sensitive: bool,
    pub stage: usize,
}

/// Whether the image config's SHELL is set, as far as the walk knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shell {
    /// A SHELL instruction set it.
    Dockerfile,
    /// The base image decides: known to be set or not, or not known yet.
    Base(Option<bool>),
}

/// A stage's state as BuildKit's `dispatchState` holds what the checks read.
#[derive(Debug, Clone)]
struct State {
    env: Env,
    /// Declared ARG names (BuildKit's `buildArgs`): set or not, they are never undefined.
    declared: Vec<String>,
    workdir_set: bool,
    shell: Shell,
}

/// The stage at the bottom of `stage`'s FROM chain (built on scratch or an image).
fn root_of(plan: &Plan, mut stage: usize) -> usize {
    while let Base::Stage(p) = plan.stages[stage].base {
        stage = p;
    }
    stage
}

/// The stages built FROM an image whose instructions (or those of stages built on them) are
/// checked.
pub(super) fn image_roots(_df: &Dockerfile, plan: &Plan, all_stages: bool) -> Vec<usize> {
    let mut roots: Vec<usize> = (0..plan.stages.len())
        .filter(|&i| all_stages || plan.stages[i].needed)
        .map(|i| root_of(plan, i))
        .filter(|&r| matches!(plan.stages[r].base, Base::Image(_)))
        .collect();
    roots.sort_unstable();
    roots.dedup();
    roots
}

impl Run<'_> {
    /// The stage at the bottom of `stage`'s FROM chain.
    pub fn root(&self, stage: usize) -> usize {
        root_of(self.plan, stage)
    }

    fn dispatched(&self, stage: usize) -> bool {
        self.opts.all_stages || self.plan.stages[stage].needed
    }

    /// Walks the stages that are built, in file order (with `only`, those whose root it is),
    /// each base image as `bases` knows it.
    pub fn stages(&self, bases: &BTreeMap<usize, BaseInfo>, only: Option<usize>) -> Vec<Dispatched> {
        let global = super::from::global_env(self.df, self.opts);
        let mut finals: BTreeMap<usize, State> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, stage) in self.df.stages.iter().enumerate() {
            if !self.dispatched(i) || only.is_some_and(|r| self.root(i) != r) {
                continue;
            }
            let state = match &self.plan.stages[i].base {
                Base::Stage(p) => match finals.get(p) {
                    Some(s) => s.clone(),
                    None => continue,
                },
                Base::Scratch => start(Some(&BaseInfo::default())),
                Base::Image(_) => start(bases.get(&i)),
            };
            let mut walk = Walk {
                run: self,
                global: &global,
                state,
                cmd: None,
                entrypoint: None,
                healthcheck: None,
                stage: i,
                out: &mut out,
            };
            for ins in &stage.instructions {
                walk.instruction(ins);
            }
            finals.insert(i, walk.state);
        }
        out
    }
}

/// A stage's state before its first instruction: the base image's ENV (and the PATH BuildKit
/// adds when it has none) and SHELL, or nothing known yet.
fn start(base: Option<&BaseInfo>) -> State {
    let mut env = Env::default();
    let shell = match base {
        Some(b) => {
            for (k, v) in &b.env {
                env.set(k, v, Origin::Base);
            }
            if !env.contains("PATH") {
                env.set("PATH", DEFAULT_PATH, Origin::Base);
            }
            Shell::Base(Some(b.shell))
        }
        None => Shell::Base(None),
    };
    State { env, declared: Vec::new(), workdir_set: false, shell }
}

struct Walk<'r, 'a> {
    run: &'r Run<'a>,
    /// The global ARG values (for an ARG without a default).
    global: &'r Env,
    state: State,
    /// The last CMD, ENTRYPOINT and HEALTHCHECK of the stage.
    cmd: Option<&'a Instruction>,
    entrypoint: Option<&'a Instruction>,
    healthcheck: Option<&'a Instruction>,
    stage: usize,
    out: &'r mut Vec<Dispatched>,
}

impl<'a> Walk<'_, 'a> {
    fn emit(&mut self, config: &CheckConfig, rule: &'static Rule, at: &Instruction, message: String, sensitive: bool) {
        if config.runs(rule) {
            let finding = Finding::at(rule, at, message);
            self.out.push(Dispatched { finding, base_sensitive: sensitive, stage: self.stage });
        }
    }

    /// Expands a word as the instruction's arguments are expanded, reporting the variables it
    /// uses that nothing set (UndefinedVar).
    fn word(&mut self, config: &CheckConfig, ins: &Instruction, word: &str) -> (String, Lookups) {
        let (value, lookups) = scope::word(word, self.run.df.escape, &self.state.env);
        self.undefined(config, ins, &lookups);
        (value.unwrap_or_default(), lookups)
    }

    fn undefined(&mut self, config: &CheckConfig, ins: &Instruction, lookups: &Lookups) {
        for name in &lookups.unmatched {
            if self.state.declared.contains(name) || NON_ENV_ARGS.contains(&name.as_str()) {
                continue;
            }
            let suggestion = closest(name, self.state.env.keys()).map(str::to_string);
            self.emit(config, &rules::UNDEFINED_VAR, ins, rules::undefined_var(name, suggestion.as_deref()), true);
        }
    }

    fn instruction(&mut self, ins: &'a Instruction) {
        let config = self.run.opts.config.with_comments(&ins.written.comments);
        let config = &config;
        let keyword = ins.written.keyword.as_str();
        match &ins.kind {
            InstructionKind::Env(pairs) => {
                // Every word sees the variables as they were before the instruction.
                let expanded: Vec<_> =
                    pairs.iter().map(|(k, v)| (self.word(config, ins, k), self.word(config, ins, v))).collect();
                for ((key, kl), (value, vl)) in expanded {
                    if ins.written.legacy_key_value {
                        self.emit(
                            config,
                            &rules::LEGACY_KEY_VALUE_FORMAT,
                            ins,
                            rules::legacy_key_value_format(keyword),
                            false,
                        );
                    }
                    self.secret(config, ins, "ENV", &key, kl.base_sensitive);
                    let tainted = kl.base_sensitive || vl.base_sensitive;
                    self.state.env.set(&key, &value, Origin::Dockerfile { tainted });
                }
            }
            InstructionKind::Label(pairs) => {
                for (k, v) in pairs {
                    self.word(config, ins, k);
                    self.word(config, ins, v);
                }
                if ins.written.legacy_key_value {
                    self.emit(
                        config,
                        &rules::LEGACY_KEY_VALUE_FORMAT,
                        ins,
                        rules::legacy_key_value_format(keyword),
                        false,
                    );
                }
            }
            InstructionKind::Arg(pairs) => self.arg(config, ins, pairs),
            InstructionKind::Run { flags: run_flags, .. } => {
                for spec in flags::multi_flag(run_flags, "mount") {
                    for field in csv_fields(spec) {
                        if let Some((_, value)) = field.split_once('=') {
                            self.word(config, ins, value);
                        }
                    }
                }
            }
            InstructionKind::Cmd(form) | InstructionKind::Entrypoint(form) => {
                let previous = if matches!(ins.kind, InstructionKind::Cmd(_)) {
                    self.cmd.replace(ins)
                } else {
                    self.entrypoint.replace(ins)
                };
                self.used_once(config, keyword, previous);
                if matches!(form, crate::dockerfile::CommandForm::Shell(_)) {
                    let (missing, sensitive) = match self.state.shell {
                        Shell::Dockerfile => (false, false),
                        Shell::Base(set) => (!set.unwrap_or(false), true),
                    };
                    if missing {
                        self.emit(
                            config,
                            &rules::JSON_ARGS_RECOMMENDED,
                            ins,
                            rules::json_args_recommended(keyword),
                            sensitive,
                        );
                    }
                }
            }
            InstructionKind::Healthcheck { .. } => {
                let previous = self.healthcheck.replace(ins);
                self.used_once(config, keyword, previous);
            }
            InstructionKind::Workdir(path) => {
                let (path, lookups) = self.word(config, ins, path);
                // Only the first WORKDIR of the build counts: fixing it fixes those after it.
                let os = self.run.plan.stage_platform(self.stage).os;
                if !self.state.workdir_set && !is_abs(&path, &os) {
                    let message = rules::workdir_relative_path(&path);
                    self.emit(config, &rules::WORKDIR_RELATIVE_PATH, ins, message, lookups.base_sensitive);
                }
                self.state.workdir_set = true;
            }
            InstructionKind::Copy(args) => self.copy(config, ins, args, false),
            InstructionKind::Add(args) => self.copy(config, ins, args, true),
            InstructionKind::User(w) | InstructionKind::Stopsignal(w) => {
                self.word(config, ins, w);
            }
            InstructionKind::Volume(volumes) => {
                for v in volumes {
                    self.word(config, ins, v);
                }
            }
            InstructionKind::Expose(ports) => self.expose(config, ins, ports),
            InstructionKind::Shell(_) => self.state.shell = Shell::Dockerfile,
            InstructionKind::From { .. } | InstructionKind::Onbuild(_) | InstructionKind::Maintainer(_) => {}
        }
    }

    /// MultipleInstructionsDisallowed, at the instruction that no longer counts.
    fn used_once(&mut self, config: &CheckConfig, keyword: &str, previous: Option<&'a Instruction>) {
        if let Some(prev) = previous {
            let message = rules::multiple_instructions_disallowed(keyword);
            self.emit(config, &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED, prev, message, false);
        }
    }

    fn secret(&mut self, config: &CheckConfig, ins: &Instruction, instruction: &str, key: &str, sensitive: bool) {
        if is_secret_name(key) {
            let message = rules::secrets_used_in_arg_or_env(instruction, key);
            self.emit(config, &rules::SECRETS_USED_IN_ARG_OR_ENV, ins, message, sensitive);
        }
    }

    /// An ARG, as BuildKit's `dispatchArg`: a `--build-arg` wins, a name without default takes
    /// the global value, a default is expanded (and its variables checked) only when used.
    fn arg(&mut self, config: &CheckConfig, ins: &Instruction, pairs: &[(String, Option<String>)]) {
        for (name, default) in pairs {
            self.secret(config, ins, "ARG", name, false);
            let given = self.run.opts.build_args.get(name);
            let value = match (given, default) {
                (Some(v), _) => Some((v.clone(), false)),
                (None, Some(d)) => {
                    let (v, lookups) = self.word(config, ins, d);
                    Some((v, lookups.base_sensitive))
                }
                (None, None) => self.global.get(name).map(|(v, _)| (v.to_string(), false)),
            };
            if let Some((v, tainted)) = value
                && !NON_ENV_ARGS.contains(&name.as_str())
            {
                self.state.env.set(name, &v, Origin::Dockerfile { tainted });
            }
            self.state.declared.push(name.clone());
        }
    }

    fn copy(&mut self, config: &CheckConfig, ins: &Instruction, args: &CopyArgs, add: bool) {
        let mut names = vec!["chown", "chmod"];
        if add {
            names.push("checksum");
        }
        for name in names {
            if let Some(v) = flags::str_flag(&args.flags, name) {
                self.word(config, ins, v);
            }
        }
        let mut paths = Vec::new();
        for source in &args.sources {
            if let CopySource::Path(p) = source {
                paths.push(self.word(config, ins, p));
            }
        }
        self.word(config, ins, &args.dest);
        for source in &args.sources {
            if let CopySource::Heredoc(h) = source
                && h.expand
            {
                let (_, lookups) = scope::heredoc(&h.body(), &self.state.env);
                self.undefined(config, ins, &lookups);
            }
        }
        // Only sources from the build context can be excluded from it.
        if !add && flags::str_flag(&args.flags, "from").is_some() {
            return;
        }
        let command = if add { "Add" } else { "Copy" };
        for (path, lookups) in paths {
            if path.contains("://") || path.starts_with("git@") {
                continue;
            }
            if let Some(shown) = ignored(self.run.opts.dockerignore, &path) {
                let message = rules::copy_ignored_file(command, &shown);
                self.emit(config, &rules::COPY_IGNORED_FILE, ins, message, lookups.base_sensitive);
            }
        }
    }

    /// ExposeProtoCasing and ExposeInvalidFormat, for each port the words expand to.
    fn expose(&mut self, config: &CheckConfig, ins: &Instruction, ports: &[String]) {
        for raw in ports {
            let (words, lookups) = scope::words(raw, self.run.df.escape, &self.state.env);
            for port in words.unwrap_or_default() {
                let parts: Vec<&str> = port.split(':').collect();
                let n = parts.len();
                let (ip, host, container) = match n {
                    1 => ("".to_string(), "", parts[0]),
                    _ => (parts[..n.saturating_sub(2)].join(":"), parts[n - 2], parts[n - 1]),
                };
                let (number, proto) = container.split_once('/').unwrap_or((container, ""));
                // A port BuildKit cannot read is an error of the build, not a finding.
                if number.is_empty() || !matches!(proto.to_lowercase().as_str(), "" | "tcp" | "udp" | "sctp") {
                    return;
                }
                if proto != proto.to_lowercase() {
                    let message = rules::expose_proto_casing(&port);
                    self.emit(config, &rules::EXPOSE_PROTO_CASING, ins, message, lookups.base_sensitive);
                }
                if !ip.is_empty() || !host.is_empty() {
                    let message = rules::expose_invalid_format(&port);
                    self.emit(config, &rules::EXPOSE_INVALID_FORMAT, ins, message, lookups.base_sensitive);
                }
            }
        }
    }
}

/// Whether a name looks like it holds a secret (SecretsUsedInArgOrEnv): one of its
/// `_`-separated words is a secret's word, and none says it is not one (`PUBLIC_KEY`,
/// `PASSWORD_FILE`, `TOKEN_VERSION`).
fn is_secret_name(name: &str) -> bool {
    const DENY: [&str; 10] =
        ["apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret", "token"];
    const ALLOW: [&str; 3] = ["public", "file", "version"];
    let words: Vec<String> = name.split('_').map(str::to_lowercase).collect();
    words.iter().any(|w| DENY.contains(&w.as_str())) && !words.iter().any(|w| ALLOW.contains(&w.as_str()))
}

/// CopyIgnoredFile: the source as BuildKit shows it when `.dockerignore` excludes it. Not
/// judged when the patterns re-include anything (`!`): what they leave is too hard to tell.
fn ignored(ignore: &crate::dockerfile::DockerIgnore, source: &str) -> Option<String> {
    let patterns = ignore.patterns();
    if patterns.is_empty() || patterns.iter().any(|p| p.starts_with('!')) {
        return None;
    }
    let shown = clean(source);
    if shown == "." || shown == "/" {
        // The context root is reported only when every entry in it is excluded.
        return patterns.iter().any(|p| matches!(p.as_str(), "*" | "**" | "**/*")).then_some(shown);
    }
    ignore.is_excluded(&shown).then_some(shown)
}

/// Go's `path.Clean`.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The fields of a `--mount` value: comma-separated, double quotes keeping commas in.
fn csv_fields(spec: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in spec.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for yes in
            ["SECRET_PASSPHRASE", "SUPER_Secret", "password", "apikey", "git_key", "super_duper_secret_token", "auth"]
        {
            assert!(is_secret_name(yes), "{yes}");
        }
        for no in [
            "sunflower",
            "PUBLIC_KEY",
            "public_token",
            "SECRET_PASSPHRASE_FILE",
            "password_file",
            "secret_File",
            "AUTH_MODULE_VERSION",
            "KEYS",
            "MONKEY",
        ] {
            assert!(!is_secret_name(no), "{no}");
        }
    }

    #[test]
    fn paths_cleaned_as_go_cleans_them() {
        assert_eq!(clean("./Dockerfile"), "Dockerfile");
        assert_eq!(clean("a//b/./c/../d/"), "a/b/d");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn mount_fields() {
        assert_eq!(csv_fields("type=cache,target=/root/.cache"), ["type=cache", "target=/root/.cache"]);
        assert_eq!(csv_fields("\"target=/a,b\",ro"), ["target=/a,b", "ro"]);
    }
}

/// Whether `path` is absolute for a stage of `os`, as BuildKit's `system.IsAbs` decides it: for
/// Windows, after a `C:` drive is taken off and `\` read as `/` (`C:\app` is; `D:\app`, `C:app`
/// and UNC paths are not).
fn is_abs(path: &str, os: &str) -> bool {
    if os != "windows" {
        return path.starts_with('/');
    }
    let slashed = path.replace('\\', "/");
    if (slashed.len() == 2 && slashed.ends_with(':')) || slashed.starts_with("//") {
        return false;
    }
    match slashed.split_once(':') {
        None => slashed.starts_with('/'),
        Some((drive, rest)) => drive.eq_ignore_ascii_case("c") && rest.starts_with('/'),
    }
}

#[cfg(test)]
mod is_abs_tests {
    use super::is_abs;

    #[test]
    fn absolute_paths_by_the_stages_os() {
        assert!(is_abs("/app", "linux") && !is_abs("app", "linux") && !is_abs("C:\\app", "linux"));
        for abs in ["C:\\app", "c:/app", "\\app", "/app"] {
            assert!(is_abs(abs, "windows"), "{abs}");
        }
        for rel in ["app", "C:app", "D:\\app", "C:", "\\\\server\\share", ".\\app"] {
            assert!(!is_abs(rel, "windows"), "{rel}");
        }
    }
}
