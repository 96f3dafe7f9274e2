//! `trowel check`: BuildKit's build checks on a Dockerfile without building it, printed as
//! `docker build --check` prints them (each finding with its rule, page, message, file, line
//! and the lines around it) or as JSON in BuildKit's shape (`--format json`). It exits 0 when
//! there are only warnings, 1 when the build could not start (the Dockerfile does not parse, a
//! base cannot be resolved) or when findings are errors (`check=error=true`), 2 on bad flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use crate::cli::{CliError, RegistryArgs, parse_build_args, resolve_dockerfile};
use trowel_engine::dockerfile::checks::Finding;
use trowel_engine::engine::{CheckOutcome, CheckRequest, check_dockerfile};
use trowel_engine::image::manifest::Platform;
use trowel_engine::secrets::{Redactor, secret_build_args};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// As `docker build --check` prints them.
    Text,
    /// BuildKit's lint result as JSON (`warnings`, `sources`, `buildError`).
    Json,
}

/// `trowel check`'s flags: the build's that decide what is checked.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Path to the Dockerfile: absolute, relative to the working directory, or relative to the
    /// context (default: the context's Dockerfile).
    #[arg(short = 'f', long)]
    pub dockerfile: Option<PathBuf>,
    /// Build context: a directory (`dir://` prefix allowed); its .dockerignore is checked against.
    #[arg(short = 'c', long, default_value = ".")]
    pub context: String,
    /// Subdirectory of the context to use as the context.
    #[arg(long)]
    pub context_sub_path: Option<String>,
    /// Build-time variable `K=V`, or `K` to take the value from the environment (repeatable).
    /// `BUILDKIT_DOCKERFILE_CHECK=skip=…;error=true` replaces the `# check=` directive.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Check only the stages this stage needs (default: every stage).
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform `os/arch[/variant]` (default: the host's).
    #[arg(long, alias = "customPlatform", alias = "platform")]
    pub custom_platform: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Do not read base images' configs from their registries; what depends on them
    /// (variables their ENV defines, their SHELL, their platform) is then not checked.
    #[arg(long)]
    pub offline: bool,
    /// A build arg whose value is secret (masked in the output); names containing TOKEN,
    /// PASSWORD, SECRET, KEY… are secret already (repeatable).
    #[arg(long = "secret-arg", value_name = "NAME")]
    pub secret_args: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl CheckArgs {
    fn request(&self) -> Result<CheckRequest, CliError> {
        let ctx = self.context.strip_prefix("dir://").unwrap_or(&self.context);
        let mut context = PathBuf::from(ctx);
        if let Some(sub) = &self.context_sub_path {
            context = context.join(sub);
        }
        if !context.is_dir() {
            return Err(CliError(format!("build context {} is not a directory", context.display())));
        }
        let dockerfile = match &self.dockerfile {
            Some(d) => resolve_dockerfile(d, &context)?,
            None => resolve_dockerfile(&context.join("Dockerfile"), &context)?,
        };
        // Named as `docker build` names it: without the `./` the default `--context .` adds.
        let dockerfile = dockerfile.strip_prefix(".").map(PathBuf::from).unwrap_or(dockerfile);
        let platform = self.custom_platform.as_deref().map(Platform::parse).transpose().map_err(CliError)?;
        let registry = if self.offline {
            None
        } else {
            let mut r = self.registry.options()?;
            r.user_agent = format!("trowel/{}", env!("CARGO_PKG_VERSION"));
            Some(r)
        };
        Ok(CheckRequest {
            dockerfile,
            context,
            build_args: parse_build_args(&self.build_args)?,
            target: self.target.clone(),
            platform,
            registry,
        })
    }
}

/// Runs `trowel check`; returns the exit code.
pub fn main(args: &CheckArgs) -> i32 {
    let req = match args.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let outcome = check_dockerfile(&req);
    let redactor = Redactor::new(secret_build_args(&req.build_args, &args.secret_args));
    let name = req.dockerfile.display().to_string();
    match args.format {
        Format::Text => {
            print!("{}", redactor.redact(&text(&name, &outcome)));
            if let Some(f) = &outcome.failure {
                eprintln!("ERROR: {}", redactor.redact(f));
            }
        }
        Format::Json => {
            let mut v = json_report(&name, &outcome);
            redactor.redact_json(&mut v);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    i32::from(outcome.failed())
}

/// The findings as `docker build --check` prints them, then a closing line.
pub fn text(name: &str, outcome: &CheckOutcome) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = outcome.text.split('\n').collect();
    let label = if outcome.error_on_findings { "ERROR" } else { "WARNING" };
    for f in &outcome.findings {
        out.push('\n');
        out.push_str(&format!("{label}: {}", f.rule.name));
        if let Some(u) = f.rule.url {
            out.push_str(&format!(" - {u}"));
        }
        out.push('\n');
        out.push_str(&f.message);
        out.push('\n');
        out.push_str(&snippet(name, &lines, f));
    }
    for u in &outcome.unchecked {
        out.push_str(&format!("\nNOT CHECKED: {u}\n"));
    }
    let n = outcome.findings.len();
    if n == 0 && outcome.failure.is_some() {
        // The check could not finish: the error (on stderr) is all there is to say.
        return out;
    }
    out.push_str(&match (n, outcome.error_on_findings) {
        (0, _) => "Check complete, no warnings found.\n".to_string(),
        (1, false) => "Check complete, 1 warning has been found!\n".to_string(),
        (n, false) => format!("Check complete, {n} warnings have been found!\n"),
        (1, true) => "Check complete, 1 error has been found!\n".to_string(),
        (n, true) => format!("Check complete, {n} errors have been found!\n"),
    });
    out
}

/// The lines around a finding, marked, as BuildKit prints a source range: two lines either
/// side of a one-line range, one of a longer one.
fn snippet(name: &str, lines: &[&str], f: &Finding) -> String {
    let (first, mut start, mut end) = (f.line, f.line, f.end_line.max(f.line).min(lines.len()));
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let pad = if end == start { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{name}:{first}\n--------------------\n");
    for i in start..=end {
        let mark = if f.line <= i && i <= f.end_line.max(f.line) { ">>>" } else { "   " };
        out.push_str(&format!(" {i:>3} | {mark} {}\n", lines[i - 1]));
    }
    out.push_str("--------------------\n");
    out
}

/// BuildKit's lint result (`result.json` of `docker build --call=check,format=json`), plus
/// `level` on each finding and what was not checked.
pub fn json_report(name: &str, outcome: &CheckOutcome) -> serde_json::Value {
    let level = if outcome.error_on_findings { "error" } else { "warning" };
    let warnings: Vec<serde_json::Value> = outcome
        .findings
        .iter()
        .map(|f| {
            let mut w = json!({
                "ruleName": f.rule.name,
                "description": f.rule.description,
                "detail": f.message,
                "level": level,
                "location": {
                    "sourceIndex": 0,
                    "ranges": [{ "start": { "line": f.line }, "end": { "line": f.end_line.max(f.line) } }],
                },
            });
            // BuildKit leaves out a page it does not have.
            if let Some(u) = f.rule.url {
                w["url"] = json!(u);
            }
            w
        })
        .collect();
    let mut v = json!({
        "warnings": warnings,
        "sources": [{ "filename": name, "language": "Dockerfile" }],
    });
    if let Some(f) = &outcome.failure {
        v["buildError"] = json!({ "message": f });
    }
    if !outcome.unchecked.is_empty() {
        v["unchecked"] = json!(outcome.unchecked);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(line: usize, end_line: usize) -> Finding {
        Finding {
            rule: &trowel_engine::dockerfile::checks::rules::JSON_ARGS_RECOMMENDED,
            line,
            end_line,
            message: "m".into(),
        }
    }

    #[test]
    fn snippets_as_buildkit_prints_them() {
        let lines: Vec<&str> = "a\nb\nc\nd\ne\nf\ng\n".split('\n').collect();
        assert_eq!(
            snippet("Dockerfile", &lines, &finding(4, 4)),
            "Dockerfile:4\n--------------------\n   2 |     b\n   3 |     c\n   4 | >>> d\n   5 |     e\n   6 |     f\n--------------------\n"
        );
        assert_eq!(
            snippet("Dockerfile", &lines, &finding(1, 1)),
            "Dockerfile:1\n--------------------\n   1 | >>> a\n   2 |     b\n   3 |     c\n--------------------\n"
        );
        assert_eq!(
            snippet("D", &lines, &finding(3, 4)),
            "D:3\n--------------------\n   2 |     b\n   3 | >>> c\n   4 | >>> d\n   5 |     e\n--------------------\n"
        );
    }
}
