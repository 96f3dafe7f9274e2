//! Dockerfile parser and expander on arbitrary text: `parse`, `plan`, ARG scoping and
//! `Instruction::expand` (BuildKit's word expansion) must return errors, never panic, loop or
//! blow the stack; and what they return must be self-consistent (spans inside the text).
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/dockerfile.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use trowel_engine::dockerfile::{self, Expanded, InstructionKind, PlatformArgs};

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
}
