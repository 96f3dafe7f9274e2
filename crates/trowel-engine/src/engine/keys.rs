//! Planning a stage's cache keys before it runs.
//!
//! Keys depend only on a step's inputs, never on whether earlier steps hit, so the whole stage
//! can be keyed up front by replaying what its instructions do to the config and the ARG scope
//! (with the same pure function execution uses). Every cacheable step's lookup then starts at
//! once, overlapped, instead of costing one registry round trip per step in sequence.

use std::collections::BTreeMap;

use crate::cache::key::{
    BaseInfo, ChainLink, FORMAT_VERSION, KeyComponents, RootOf, Var, VarKind, referenced_names, root_key,
};
use crate::dockerfile::{Base, Expanded, Instruction, PROXY_ARGS};
use crate::engine::build::Engine;
use crate::engine::error::BuildError;
use crate::engine::options::BuildOptions;
use crate::engine::stage::{PlannedStep, StageState};
use crate::engine::steps::copy::keyfiles::key_inputs;
use crate::engine::steps::metadata::apply_to_state;
use crate::engine::vars::{StepVars, run_env};
use crate::image::config::ImageConfig;
use trowel_events::StepId;

impl Engine<'_> {
    /// Whether a step's layer goes through the cache.
    fn cacheable(&self, e: &Expanded) -> bool {
        let Some(c) = &self.opts.cache else { return false };
        match e {
            Expanded::Run { .. } | Expanded::Workdir(_) => c.run_layers,
            Expanded::Copy(_) | Expanded::Add(_) => c.copy_layers,
            _ => false,
        }
    }

    fn layer_format(&self) -> String {
        let mut f = format!("{:?}", self.opts.compression).to_lowercase();
        if let Some(l) = self.opts.compression_level {
            f.push_str(&format!("-{l}"));
        }
        if self.opts.reproducible {
            f.push_str("+reproducible");
        }
        f
    }

    /// Computes the keys of every step of a stage (FROM is `from`) and starts the lookups of
    /// the cacheable ones. Also sets the stage's `final_key`.
    pub(crate) fn plan_keys(
        &mut self,
        st: &mut StageState,
        from: &Instruction,
        steps: &[(StepId, Instruction)],
    ) -> Result<(), BuildError> {
        if self.opts.cache.is_none() {
            return Ok(());
        }
        let platform = self.platform.to_string();
        let root = match &self.plan.stages[st.index].base {
            Base::Scratch => root_key(&platform, &RootOf::Scratch),
            Base::Image(_) => {
                let d = st.base_digest.clone().expect("an image base has a digest");
                root_key(&platform, &RootOf::Image(&d))
            }
            Base::Stage(p) => {
                let k = self.stages[*p].as_ref().and_then(|s| s.final_key.clone()).expect("parent stage keyed");
                root_key(&platform, &RootOf::Stage(&k))
            }
        };
        let base = BaseInfo { reference: st.base_ref.clone(), digest: st.base_digest.clone() };
        let from_display = match &self.plan.stages[st.index].base {
            Base::Stage(p) => format!("FROM {}", self.plan.stages[*p].name.clone().unwrap_or_else(|| p.to_string())),
            _ => format!("FROM {}", st.base_ref),
        };
        let mut chain = vec![ChainLink { line: from.line, instruction: from_display, key: root.clone() }];
        let mut parent = root;
        // Replay on copies: execution mutates the real state.
        let mut config = st.config.clone();
        let mut args = st.args.clone();
        let mut cmd_set = st.cmd_set;
        let layer_format = self.layer_format();
        for (id, ins) in steps {
            let expanded = {
                let vars = StepVars { config: &config, args: &args };
                match ins.expand(&vars, self.df.escape) {
                    Ok(e) => e,
                    // Execution reports the error at this step; nothing after it is keyed.
                    Err(_) => break,
                }
            };
            let display = expanded.display();
            let cacheable = self.cacheable(&expanded);
            let (vars, files, sources) = match &expanded {
                Expanded::Run { .. } => (run_vars(&config, &args, self.opts), Vec::new(), BTreeMap::new()),
                Expanded::Copy(c) | Expanded::Add(c) => {
                    let is_add = matches!(expanded, Expanded::Add(_));
                    match key_inputs(self, st.index, c, is_add) {
                        Ok(k) => (used_vars(ins, &config, &args, self.opts), k.files, k.sources),
                        // The step itself will fail with the real error.
                        Err(_) => break,
                    }
                }
                _ => (used_vars(ins, &config, &args, self.opts), Vec::new(), BTreeMap::new()),
            };
            let components = KeyComponents {
                version: FORMAT_VERSION,
                platform: platform.clone(),
                layer_format: layer_format.clone(),
                parent: parent.clone(),
                instruction: display.clone(),
                vars,
                files,
                sources,
                line: ins.line,
                chain: chain.clone(),
                base: Some(base.clone()),
            };
            let key = components.key();
            // The key hashes the real text; what is recorded (and compared when explaining a
            // miss) never holds a secret.
            let components = self.redact_components(components);
            if apply_to_state(&mut config, &mut args, &mut cmd_set, ins, self.df.escape, expanded).is_err() {
                break;
            }
            chain.push(ChainLink { line: ins.line, instruction: display.clone(), key: key.clone() });
            parent = key.clone();
            st.planned.insert(*id, PlannedStep { components, key, display, cacheable });
        }
        if st.planned.len() == steps.len() {
            st.final_key = Some(parent);
        }
        self.start_lookups(st);
        Ok(())
    }
}

/// A RUN sees every ENV and every ARG in scope (Docker: ARGs are implicitly used by RUN), but
/// proxy args are left out of the cache key, as Docker does.
fn run_vars(config: &ImageConfig, args: &crate::dockerfile::ArgScope, opts: &BuildOptions) -> BTreeMap<String, Var> {
    let env_names: Vec<String> = config.env().into_iter().map(|(k, _)| k).collect();
    let mut out = BTreeMap::new();
    for (k, v) in run_env(config, args, "") {
        if PROXY_ARGS.contains(&k.as_str()) && !env_names.contains(&k) {
            continue;
        }
        if (k == "HOME" || k == "PATH") && !env_names.contains(&k) {
            continue; // defaults trowel adds, not inputs
        }
        let kind = if env_names.contains(&k) { VarKind::Env } else { VarKind::Arg };
        out.insert(k.clone(), var(opts, kind, &k, Some(v)));
    }
    out
}

/// Other steps: only the variables their text refers to (an unrelated ARG must not miss).
fn used_vars(
    ins: &Instruction,
    config: &ImageConfig,
    args: &crate::dockerfile::ArgScope,
    opts: &BuildOptions,
) -> BTreeMap<String, Var> {
    let mut out = BTreeMap::new();
    for name in referenced_names(&ins.source) {
        if let Some(v) = config.env_var(&name) {
            out.insert(name.clone(), var(opts, VarKind::Env, &name, Some(v)));
        } else if args.is_declared(&name) {
            out.insert(name.clone(), var(opts, VarKind::Arg, &name, args.value(&name).map(str::to_string)));
        }
    }
    out
}

fn var(opts: &BuildOptions, kind: VarKind, name: &str, value: Option<String>) -> Var {
    let value = if opts.is_secret_arg(name) { value.map(|v| crate::secrets::fingerprint(&v)) } else { value };
    Var { kind, value }
}

impl Engine<'_> {
    fn redact_components(&self, mut c: KeyComponents) -> KeyComponents {
        if self.redactor.is_empty() {
            return c;
        }
        c.instruction = self.redactor.redact(&c.instruction);
        for link in &mut c.chain {
            link.instruction = self.redactor.redact(&link.instruction);
        }
        c
    }
}
