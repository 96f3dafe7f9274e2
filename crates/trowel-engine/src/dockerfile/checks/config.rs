//! Which checks run, and whether they fail the build: the `# check=` parser directive, the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg that replaces it, and `# check=` comments right above
//! an instruction, each parsed as BuildKit parses them (`linter.ParseLintOptions`,
//! `parser.ParseDirective`, `Linter.WithMergedConfigFromComments`), quirks included: the value
//! ends at its first space (so `# check=skip=A // why` is `skip=A`), and an experimental rule
//! runs when enabled even under `skip=all`.

use super::rules::Rule;

/// The build arg that, when given, replaces the Dockerfile's `# check=` directive.
pub const BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// Check options (BuildKit's `linter.Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=Rule1,Rule2`.
    pub skip: Vec<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=Rule1,Rule2`.
    pub experimental: Vec<String>,
    /// `error=true`: a finding fails the build.
    pub error: bool,
}

/// Where a build's check options came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// Neither the directive nor the build arg: every stable rule, as warnings.
    Default,
    /// The `# check=` directive at this line.
    Directive { line: usize },
    /// The `BUILDKIT_DOCKERFILE_CHECK` build arg.
    BuildArg,
}

impl CheckConfig {
    /// Parses check options (`skip=A,B;error=true;experimental=all`) as BuildKit does: at most
    /// three `;`-separated parts (a fourth stays inside the third's value).
    pub fn parse(text: &str) -> Result<CheckConfig, String> {
        let text = text.trim();
        let mut config = CheckConfig::default();
        if text.is_empty() {
            return Ok(config);
        }
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("invalid check option {}", super::rules::quote(part)));
            };
            let list = |v: &str| v.split(',').map(|r| r.trim().to_string()).collect::<Vec<_>>();
            match key.trim() {
                "skip" => match value.trim() {
                    "all" => config.skip_all = true,
                    v => config.skip = list(v),
                },
                "experimental" => match value.trim() {
                    "all" => config.experimental_all = true,
                    v => config.experimental = list(v),
                },
                "error" => {
                    config.error = parse_bool(value.trim()).ok_or_else(|| {
                        format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            super::rules::quote(part),
                            super::rules::quote(value.trim())
                        )
                    })?
                }
                k => return Err(format!("invalid check option {}", super::rules::quote(k))),
            }
        }
        Ok(config)
    }

    /// The options a build uses: `BUILDKIT_DOCKERFILE_CHECK` when given (it replaces the
    /// directive), else the Dockerfile's `# check=` directive, else the defaults. A value that
    /// does not parse is an error, as in BuildKit.
    pub fn for_build(
        text: &str,
        build_args: &std::collections::BTreeMap<String, String>,
    ) -> Result<(CheckConfig, ConfigSource), String> {
        if let Some(v) = build_args.get(BUILD_ARG) {
            let c = CheckConfig::parse(v).map_err(|e| format!("failed to parse {BUILD_ARG}: {e}"))?;
            return Ok((c, ConfigSource::BuildArg));
        }
        match directive(text) {
            Some((value, line)) => {
                let c = CheckConfig::parse(&value).map_err(|e| format!("failed to parse check options: {e}"))?;
                Ok((c, ConfigSource::Directive { line }))
            }
            None => Ok((CheckConfig::default(), ConfigSource::Default)),
        }
    }

    /// Whether `rule` runs under these options.
    pub fn runs(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !(self.skip_all || self.skip.iter().any(|r| r == rule.name))
        }
    }

    /// These options with the first valid `check=` comment among `comments` added (skips and
    /// experimental rules only: a comment cannot turn `error` on or off).
    pub fn with_comments(&self, comments: &[String]) -> CheckConfig {
        for comment in comments {
            let Some((name, value)) = directive_line(comment) else { continue };
            if name != "check" {
                continue;
            }
            let value = value.split(' ').next().unwrap_or("");
            return match CheckConfig::parse(value) {
                Ok(other) => self.merged(&other),
                Err(_) => self.clone(),
            };
        }
        self.clone()
    }

    fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut out = self.clone();
        out.skip_all |= other.skip_all;
        out.experimental_all |= other.experimental_all;
        out.skip.extend(other.skip.iter().cloned());
        out.experimental.extend(other.experimental.iter().cloned());
        out
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The value of the Dockerfile's `# check=` directive (up to its first space) and its line, as
/// BuildKit's `ParseDirective` finds it: after a byte-order mark and a `#!` line, among the
/// `# name=value` lines that open the file.
pub fn directive(text: &str) -> Option<(String, usize)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).peekable();
    let mut line_no = 0;
    if lines.peek().is_some_and(|l| l.starts_with("#!")) {
        lines.next();
        line_no += 1;
    }
    let mut seen: Vec<String> = Vec::new();
    for line in lines {
        line_no += 1;
        let Some(rest) = line.strip_prefix('#') else { break };
        let Some((name, value)) = directive_line(rest) else { break };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        if seen.contains(&name) {
            // BuildKit stops at a repeated directive and keeps what it found before it.
            break;
        }
        if name == "check" {
            return Some((value.split(' ').next().unwrap_or("").to_string(), line_no));
        }
        seen.push(name);
    }
    None
}

/// `name=value` (BuildKit's `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` after leading blanks);
/// the name lower-cased.
fn directive_line(line: &str) -> Option<(String, String)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    let line = line.trim_start_matches(char::is_whitespace);
    let name_end = line.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(line.len());
    let name = &line[..name_end];
    if !name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = line[name_end..].trim_start_matches(is_space).strip_prefix('=')?;
    if rest.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), rest.trim_matches(is_space).to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::rules;
    use super::*;

    #[test]
    fn options_as_buildkit_parses_them() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "StageNameCasing"]);
        assert!(c.error && !c.skip_all);
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert!(CheckConfig::parse("experimental=all;error=TRUE").unwrap().experimental_all);
        assert_eq!(CheckConfig::parse("  ").unwrap(), CheckConfig::default());
        assert_eq!(
            CheckConfig::parse("error=maybe").unwrap_err(),
            "failed to parse check option \"error=maybe\": strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(CheckConfig::parse("skip").unwrap_err(), "invalid check option \"skip\"");
        assert_eq!(CheckConfig::parse("nope=1").unwrap_err(), "invalid check option \"nope\"");
        // Three parts at most: the rest stays in the third value.
        let c = CheckConfig::parse("error=false;skip=A;experimental=B;skip=C").unwrap();
        assert_eq!((c.skip, c.experimental), (vec!["A".to_string()], vec!["B;skip=C".to_string()]));
    }

    #[test]
    fn experimental_rules_ignore_skip() {
        let c = CheckConfig::parse("skip=all;experimental=InvalidDefinitionDescription").unwrap();
        assert!(!c.runs(&rules::JSON_ARGS_RECOMMENDED));
        assert!(c.runs(&rules::INVALID_DEFINITION_DESCRIPTION));
        assert!(!CheckConfig::default().runs(&rules::INVALID_DEFINITION_DESCRIPTION));
        assert!(CheckConfig::default().runs(&rules::UNDEFINED_VAR));
    }

    #[test]
    fn the_directive() {
        assert_eq!(
            directive("# syntax=docker/dockerfile:1\n# check=skip=A,B;error=true\nFROM x\n"),
            Some(("skip=A,B;error=true".to_string(), 2))
        );
        assert_eq!(directive("#check = error=true // fail on anything\n"), Some(("error=true".to_string(), 1)));
        assert_eq!(directive("#!/usr/bin/env docker\n# check=skip=all\n"), Some(("skip=all".to_string(), 2)));
        assert_eq!(directive("\u{feff}# check=skip=all\n"), Some(("skip=all".to_string(), 1)));
        // After anything that is not a directive, nothing is one.
        assert_eq!(directive("# a comment\n# check=skip=all\n"), None);
        assert_eq!(directive("\n# check=skip=all\n"), None);
        assert_eq!(directive(" # check=skip=all\n"), None);
        assert_eq!(directive("FROM x\n# check=skip=all\n"), None);
        assert_eq!(directive("# check=skip=A\n# check=skip=B\n"), Some(("skip=A".to_string(), 1)));
    }

    #[test]
    fn the_build_arg_replaces_the_directive() {
        let text = "# check=error=true\nFROM x\n";
        let mut args = std::collections::BTreeMap::new();
        let (c, src) = CheckConfig::for_build(text, &args).unwrap();
        assert!(c.error);
        assert_eq!(src, ConfigSource::Directive { line: 1 });
        args.insert(BUILD_ARG.to_string(), "skip=all".to_string());
        let (c, src) = CheckConfig::for_build(text, &args).unwrap();
        assert!(c.skip_all && !c.error);
        assert_eq!(src, ConfigSource::BuildArg);
        args.insert(BUILD_ARG.to_string(), "skip".to_string());
        assert_eq!(
            CheckConfig::for_build(text, &args).unwrap_err(),
            "failed to parse BUILDKIT_DOCKERFILE_CHECK: invalid check option \"skip\""
        );
        let bad = "# check=error=yes\nFROM x\n";
        assert!(
            CheckConfig::for_build(bad, &Default::default())
                .unwrap_err()
                .starts_with("failed to parse check options: ")
        );
    }

    #[test]
    fn comments_add_skips_for_one_instruction() {
        let base = CheckConfig { error: true, ..CheckConfig::default() };
        let c = base.with_comments(&["some words".into(), "check=skip=SecretsUsedInArgOrEnv // allowed here".into()]);
        assert_eq!(c.skip, ["SecretsUsedInArgOrEnv"]);
        assert!(c.error);
        // Only the first `check=` comment counts; one that does not parse changes nothing.
        let c = base.with_comments(&["check=bogus".into(), "check=skip=all".into()]);
        assert_eq!(c, base);
        assert!(base.with_comments(&["check=skip=all".into()]).skip_all);
        assert!(!base.with_comments(&["check=error=false".into()]).skip_all);
        assert!(base.with_comments(&["check=error=false".into()]).error);
    }
}
