//! Dockerfile parser and expander on arbitrary text: `parse`, `plan`, ARG scoping,
//! `Instruction::expand` (BuildKit's word expansion) and the build checks must return errors,
//! never panic, loop or blow the stack; and what they return must be self-consistent (spans and
//! findings inside the text).
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/dockerfile.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use trowel_engine::dockerfile::checks::{self, BaseInfo, CheckConfig, CheckOptions};
use trowel_engine::dockerfile::{self, DockerIgnore, Expanded, InstructionKind, PlatformArgs};

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(df) = dockerfile::parse(Path::new("Dockerfile"), text) else { return };
    let lines = text.lines().count().max(1);
    for ins in df.instructions() {
        assert!(ins.line >= 1 && ins.line <= ins.end_line, "span {}..{} of {:?}", ins.line, ins.end_line, ins.source);
        assert!(ins.end_line <= lines + 1, "span {}..{} past the {lines} lines of the text", ins.line, ins.end_line);
        let _ = ins.first_line();
    }
    // Values that themselves look like expansions must be taken literally, not re-expanded.
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("A".into(), "${A}${A}".into());
    vars.insert("B".into(), "$A b c".into());
    vars.insert("EMPTY".into(), String::new());
    vars.insert("PATH".into(), "/usr/bin:/bin".into());
    let mut args = BTreeMap::new();
    args.insert("TAG".to_string(), "1.0".to_string());
    args.insert("A".to_string(), "$B".to_string());
    let target = df.stages.last().and_then(|s| s.name.clone());
    for t in [None, target.as_deref()] {
        let Ok(plan) = dockerfile::plan(&df, t, &args, &PlatformArgs::host()) else { continue };
        for stage in plan.stages_in_order() {
            let mut scope = plan.arg_scope();
            let mut stage_vars = vars.clone();
            for ins in &df.stages[stage.index].instructions {
                if let InstructionKind::Arg(_) = ins.kind {
                    if let Ok(set) = scope.apply(ins, &stage_vars, df.escape) {
                        for (name, value) in set {
                            if let Some(v) = value {
                                stage_vars.insert(name, v);
                            }
                        }
                    }
                    continue;
                }
                if let Ok(e) = ins.expand(&stage_vars, df.escape) {
                    let _ = e.display();
                    if let Expanded::Env(pairs) = &e {
                        stage_vars.extend(pairs.iter().cloned());
                    }
                }
            }
        }
    }
    for ins in df.instructions() {
        if let Ok(e) = ins.expand(&vars, df.escape) {
            let _ = e.display();
        }
    }
    build_checks(text, &args);
}

/// Every build check (experimental ones too), with the base images known and not, and once
/// each base is: findings lie within the text.
fn build_checks(text: &str, args: &BTreeMap<String, String>) {
    let Ok(df) = dockerfile::parse(Path::new("Dockerfile"), text) else { return };
    let lines = text.lines().count().max(1) + 1;
    let directive = CheckConfig::for_build(text, args).map(|(c, _)| c).unwrap_or_default();
    let config = CheckConfig { experimental_all: true, ..directive };
    let ignore = DockerIgnore::parse("*.log\nsecret*\n**/tmp\n").expect("valid patterns");
    let platforms = PlatformArgs::host();
    let target = df.stages.last().and_then(|s| s.name.clone());
    for t in [None, target.as_deref()] {
        let opts = CheckOptions {
            config: &config,
            build_args: args,
            target: t,
            platforms: &platforms,
            dockerignore: &ignore,
            all_stages: t.is_none(),
        };
        let base = BaseInfo { env: vec![("HOME".into(), "/root".into()), ("A".into(), "$A".into())], shell: false };
        let all: BTreeMap<usize, BaseInfo> = (0..df.stages.len()).map(|i| (i, base.clone())).collect();
        for bases in [BTreeMap::new(), all] {
            let report = checks::check(&df, &opts, &bases);
            for f in &report.findings {
                assert!(1 <= f.line && f.line <= f.end_line && f.end_line <= lines, "{f:?} outside {lines} lines");
            }
        }
        if let Ok(plan) = dockerfile::plan(&df, t, args, &platforms) {
            for root in checks::image_roots(&df, &plan, opts.all_stages) {
                for f in checks::check_base(&df, &opts, &plan, root, &base) {
                    assert!(1 <= f.line && f.end_line <= lines, "{f:?} outside {lines} lines");
                }
            }
        }
    }
}
