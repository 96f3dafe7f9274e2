//! Planning a stage's cache keys before it runs.
//!
//! Keys depend only on a step's inputs, never on whether earlier steps hit, so the whole stage
//! can be keyed up front by replaying what its instructions do to the config and the ARG scope
//! (with the same pure function execution uses). Every cacheable step's lookup then starts at
//! once, overlapped, instead of costing one registry round trip per step in sequence.
//!
//! A `--link` step's key does not chain from the step before it (its layer is made on an empty
//! root): it names its resolved destination instead, and the steps after it chain from both.

use std::collections::BTreeMap;
use std::sync::Arc;

use trowel_events::StepId;

use crate::cache::key::{
    BaseInfo, ChainLink, FORMAT_VERSION, KeyComponents, LinkInputs, RootOf, Var, VarKind, linked_chain_key,
    referenced_names, root_key, uncached_tail,
};
use crate::digest::Digest;
use crate::dockerfile::{Base, Expanded, Instruction, InstructionKind, PROXY_ARGS, RunScript};
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::engine::layer_cache::{LayerCache, PlannedStep, StageKeys};
use crate::engine::mounts;
use crate::engine::options::BuildOptions;
use crate::engine::stage::StageConfig;
use crate::engine::stages::Stages;
use crate::engine::steps::config::apply_to;
use crate::engine::steps::copy::keyfiles::key_inputs;
use crate::engine::steps::copy::seen::Seen;
use crate::engine::steps::copy::{from_files, link_destination, stage_index};
use crate::engine::vars::run_env;
use crate::fs::IgnoreList;
use crate::image::config::ImageConfig;

/// Whether a step's layer goes through the cache.
fn cacheable(opts: &BuildOptions, e: &Expanded) -> bool {
    let Some(c) = &opts.cache else { return false };
    match e {
        Expanded::Run { .. } | Expanded::Workdir(_) => c.run_layers,
        Expanded::Copy(_) | Expanded::Add(_) => c.copy_layers,
        _ => false,
    }
}

/// How layers are written, as far as a cached layer must match it.
fn layer_format(opts: &BuildOptions) -> String {
    let mut f = format!("{:?}", opts.layers.compression).to_lowercase();
    if let Some(l) = opts.layers.compression_level {
        f.push_str(&format!("-{l}"));
    }
    if opts.layers.reproducible {
        f.push_str("+reproducible");
    }
    f
}

/// The image paths snapshots leave out as the key records them: `--ignore-path` and `/var/run`
/// (unless `--ignore-var-run=false`), as an [`IgnoreList`] takes them (cleaned, sorted, one
/// below another dropped), so spellings of the same set share a key. `None` for the default,
/// `/var/run` alone, whose keys stay those of before the set was keyed. Container isolation's
/// own directories are left out too, but never of the image: they are not keyed.
pub(crate) fn ignored_paths(opts: &BuildOptions) -> Option<Vec<String>> {
    let mut list = IgnoreList::new(opts.layers.ignore_paths.iter().map(String::as_str));
    if opts.layers.ignore_var_run {
        list.add("/var/run");
    }
    let paths = list.paths();
    (paths != [DEFAULT_IGNORED]).then(|| paths.to_vec())
}

/// The repository a build's entries record they were made for (see [`KeyComponents::origin`]):
/// the first destination's, its tag or digest left out.
fn origin(opts: &BuildOptions) -> Option<String> {
    let first = crate::registry::Reference::parse(opts.output.destinations.first()?).ok()?;
    Some(crate::registry::Reference { tag: None, digest: None, ..first }.to_string())
}

/// What snapshots leave out by default (kaniko's `--ignore-var-run=true`).
const DEFAULT_IGNORED: &str = "/var/run";

/// What a stage's keys are computed from.
pub(crate) struct StageInputs<'a> {
    pub index: usize,
    /// Manifest digest of the image at the bottom of the stage.
    pub base_digest: Option<&'a crate::digest::Digest>,
    /// That image as written.
    pub base_ref: &'a str,
    /// The stage's config as it starts.
    pub config: &'a StageConfig,
    /// The check that tells the stage cold (its pointer tag absent), when the stage awaits it
    /// to make its root ahead, and the step whose pointer it reads: a hit there moves that
    /// pointer (`LayerCache::start_lookups`).
    pub cold: Option<(usize, crate::engine::prefetch::Cold)>,
}

/// Computes the keys of every step of a stage (FROM is `from`) and starts the lookups of the
/// cacheable ones (and of the COPY/ADD steps the local layer store serves). The stage's final key is set only when every step could be keyed.
pub(crate) fn plan(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    cache: &LayerCache,
    stage: StageInputs<'_>,
    from: &Instruction,
    steps: &[(StepId, Instruction)],
) -> StageKeys {
    let mut keys = StageKeys::default();
    // The platform the stage's root is for, as BuildKit's vertex digests have it: the target's,
    // unless `FROM --platform` fixes it (then a `$BUILDPLATFORM` tools stage is the same
    // entry whichever targets a build has, in whatever order, as it is the same work). What
    // else of the target a step sees is in its own inputs: the TARGET* ARGs it declared (a
    // RUN's vars), an image it copies or mounts from (pulled for the target: its digest).
    let platform = ctx.plan.stage_platform(stage.index).to_string();
    let root = match &ctx.plan.stages[stage.index].base {
        Base::Scratch => root_key(&platform, &RootOf::Scratch),
        Base::Image(_) => match stage.base_digest {
            Some(d) => root_key(&platform, &RootOf::Image(d)),
            None => return keys,
        },
        Base::Stage(p) => match stages.get(*p).and_then(|s| s.final_key.clone()) {
            Some(k) => root_key(&platform, &RootOf::Stage(&k)),
            // The parent was not fully keyed (a step of it could not be): neither is this.
            None => return keys,
        },
    };
    let base = BaseInfo { reference: stage.base_ref.to_string(), digest: stage.base_digest.cloned() };
    let from_display = match &ctx.plan.stages[stage.index].base {
        Base::Stage(p) => format!("FROM {}", ctx.plan.stages[*p].name.clone().unwrap_or_else(|| p.to_string())),
        _ => format!("FROM {}", stage.base_ref),
    };
    // A stage built on another carries the end of that one's chain no entry explains (see
    // `ChainLink::stage_tail`).
    let stage_tail = match &ctx.plan.stages[stage.index].base {
        Base::Stage(p) => stages.get(*p).map(|s| s.final_tail.clone()).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut chain =
        vec![ChainLink { line: from.line, instruction: from_display, key: root.clone(), inputs: None, stage_tail }];
    let mut parent = root;
    ask_records_ahead(ctx, stages, cache, stage.index, stage.config, steps);
    // Replay on a copy: execution changes the real config.
    let mut config = stage.config.clone();
    let layer_format = layer_format(ctx.opts);
    let ignored = ignored_paths(ctx.opts);
    let origin = origin(ctx.opts);
    for (id, ins) in steps {
        let expanded = match ins.expand(&config.vars(), ctx.df.escape) {
            Ok(e) => e,
            // Execution reports the error at this step; nothing after it is keyed.
            Err(_) => break,
        };
        let display = expanded.display();
        let cacheable = cacheable(ctx.opts, &expanded);
        // A context file that changed while it was hashed fails the step (see `StageKeys`).
        let changed = |e: &StepError| match e {
            StepError::ContextChanged { path, what, .. } => Some((*id, path.clone(), what.clone())),
            _ => None,
        };
        let (vars, files, sources, seen) = match &expanded {
            Expanded::Run { flags, .. } => {
                // The mounts' specs and what bind mounts show; never a cache's contents or a
                // secret's value.
                let workdir = config.image.working_dir().unwrap_or("/").to_string();
                let inputs = match mounts::resolve(flags, &workdir, &ctx.plan, stage.index) {
                    Ok(m) => mounts::key::key_inputs(ctx, stages, cache.copy_from(), *id, &m),
                    Err(e) => Err(StepError::Invalid(e.to_string())),
                };
                match inputs {
                    Ok((files, sources, seen)) => (run_vars(&config.image, &config.args, ctx), files, sources, seen),
                    // The step itself will fail with the real error.
                    Err(e) => {
                        keys.context_changed = changed(&e);
                        break;
                    }
                }
            }
            Expanded::Copy(c) | Expanded::Add(c) => {
                let is_add = matches!(expanded, Expanded::Add(_));
                match key_inputs(ctx, stages, cache.copy_from(), *id, c, is_add) {
                    Ok(k) => (used_vars(ins, &config.image, &config.args, ctx), k.files, k.sources, k.seen),
                    // The step itself will fail with the real error.
                    Err(e) => {
                        keys.context_changed = changed(&e);
                        break;
                    }
                }
            }
            _ => (used_vars(ins, &config.image, &config.args, ctx), Vec::new(), BTreeMap::new(), Seen::default()),
        };
        let seen = (!seen.is_empty()).then(|| Arc::new(seen));
        let linked = match &expanded {
            Expanded::Copy(c) | Expanded::Add(c) => link_destination(&config.image, c),
            _ => None,
        };
        let components = KeyComponents {
            version: FORMAT_VERSION,
            platform: platform.clone(),
            layer_format: layer_format.clone(),
            ignored: ignored.clone(),
            parent: if linked.is_some() { String::new() } else { parent.clone() },
            linked: linked.clone(),
            instruction: display.clone(),
            vars,
            files,
            sources,
            user: reads_user(&expanded)
                .then(|| config.image.user().filter(|u| !u.is_empty()).map(str::to_string))
                .flatten(),
            shell: matches!(&expanded, Expanded::Run { script: RunScript::Shell(_), .. })
                .then(|| config.image.shell())
                .flatten(),
            line: ins.line,
            written: Some(Digest::of(ins.source.as_bytes()).hex()[..16].to_string()),
            origin: origin.clone(),
            chain: chain.clone(),
            base: Some(base.clone()),
        };
        let key = components.key();
        // The key hashes the real text; what is recorded (and compared when explaining a miss)
        // never holds a secret.
        let components = redact_components(ctx, components);
        let chains = chains(&expanded);
        if apply_to(&mut config, ins, ctx.df.escape, expanded).is_err() {
            break;
        }
        let chain_key = if !chains {
            parent.clone()
        } else if linked.is_some() {
            linked_chain_key(&parent, &key)
        } else {
            key.clone()
        };
        if chains {
            // A step with no cache entry of its own leaves its inputs to the entries after it.
            let inputs = (!cacheable).then(|| Box::new(LinkInputs::of(&components)));
            chain.push(ChainLink {
                line: ins.line,
                instruction: display.clone(),
                key: chain_key.clone(),
                inputs,
                stage_tail: Vec::new(),
            });
            parent = chain_key.clone();
        }
        // A COPY/ADD kept out of the cache repository is looked up in the local layer store and
        // for a layer reference record in the cache repository.
        let copies = matches!(ins.kind, InstructionKind::Copy(_) | InstructionKind::Add(_));
        let local = !cacheable && copies;
        keys.planned.insert(
            *id,
            PlannedStep { components: Arc::new(components), key, chain_key, display, cacheable, local, copies, seen },
        );
    }
    if keys.planned.len() == steps.len() {
        keys.final_key = Some(parent);
        keys.final_tail = uncached_tail(&chain);
    }
    cache.start_lookups(ctx, &mut keys, stage.cold);
    keys
}

/// Starts reading, all at once, the copy-from records the stage's `COPY --from=<stage>` steps
/// will look for (`steps/copy/from_files.rs`), replaying the config as [`plan`] does: each is
/// then one request's wait at most, not one after another's.
fn ask_records_ahead(
    ctx: &BuildContext<'_>,
    stages: &Stages,
    cache: &LayerCache,
    index: usize,
    config: &StageConfig,
    steps: &[(StepId, Instruction)],
) {
    // Most stages copy from no stage: no second replay for them.
    let copies_from = |ins: &Instruction| match &ins.kind {
        InstructionKind::Copy(a) | InstructionKind::Add(a) => a.flags.iter().any(|f| f.name == "from"),
        _ => false,
    };
    if !steps.iter().any(|(_, ins)| copies_from(ins)) {
        return;
    }
    let mut config = config.clone();
    for (_, ins) in steps {
        let Ok(expanded) = ins.expand(&config.vars(), ctx.df.escape) else { return };
        if let Expanded::Copy(c) | Expanded::Add(c) = &expanded
            && let Some(p) = c.from.as_deref().and_then(|f| stage_index(&ctx.plan, index, f))
        {
            from_files::ask_ahead(ctx, stages, cache.copy_from(), p, c, matches!(expanded, Expanded::Add(_)));
        }
        if apply_to(&mut config, ins, ctx.df.escape, expanded).is_err() {
            return;
        }
    }
}

/// Whether the steps after this one chain from it (their keys hold its key): those that change
/// files. The other instructions only change what the image config says (LABEL, ENV, ARG,
/// USER, SHELL, EXPOSE, CMD, …): as in BuildKit, whose keys hold a step's filesystem and what
/// the step itself reads, they miss no later step that does not read them. What a step reads of
/// them is in its own key: a RUN's vars hold every ENV and ARG in scope, a COPY's the
/// variables its text names (its text is expanded), a RUN or WORKDIR its USER, a RUN in shell
/// form its SHELL. So an edited LABEL near the top no longer misses every step below it, an
/// `ARG`/`ENV` change (`ARG CI_COMMIT_SHA` for a `LABEL revision=$CI_COMMIT_SHA`) misses the
/// RUNs, which see it, and no COPY that does not name it, nor does a USER (a COPY's files are
/// root's unless `--chown` says otherwise); kaniko and Docker's classic builder chain the
/// whole config.
fn chains(e: &Expanded) -> bool {
    match e {
        Expanded::Run { .. } | Expanded::Copy(_) | Expanded::Add(_) | Expanded::Workdir(_) | Expanded::From { .. } => {
            true
        }
        Expanded::User(_)
        | Expanded::Shell(_)
        | Expanded::Cmd(_)
        | Expanded::Entrypoint(_)
        | Expanded::Env(_)
        | Expanded::Arg(_)
        | Expanded::Label(_)
        | Expanded::Expose(_)
        | Expanded::Volume(_)
        | Expanded::Stopsignal(_)
        | Expanded::Healthcheck(_)
        | Expanded::Onbuild(_)
        | Expanded::Maintainer(_) => false,
    }
}

/// Whether a step reads the USER: a RUN runs as it, a WORKDIR makes its directory for it.
fn reads_user(e: &Expanded) -> bool {
    matches!(e, Expanded::Run { .. } | Expanded::Workdir(_))
}

/// A RUN sees every ENV and every ARG in scope (Docker: ARGs are implicitly used by RUN), but
/// proxy args are left out of the cache key, as Docker does.
fn run_vars(config: &ImageConfig, args: &crate::dockerfile::ArgScope, ctx: &BuildContext<'_>) -> BTreeMap<String, Var> {
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
        out.insert(k.clone(), var(ctx, kind, &k, Some(v)));
    }
    out
}

/// Other steps: only the variables their text refers to (an unrelated ARG must not miss).
fn used_vars(
    ins: &Instruction,
    config: &ImageConfig,
    args: &crate::dockerfile::ArgScope,
    ctx: &BuildContext<'_>,
) -> BTreeMap<String, Var> {
    let mut out = BTreeMap::new();
    for name in referenced_names(&ins.source) {
        if let Some(v) = config.env_var(&name) {
            out.insert(name.clone(), var(ctx, VarKind::Env, &name, Some(v)));
        } else if args.is_declared(&name) {
            out.insert(name.clone(), var(ctx, VarKind::Arg, &name, args.value(&name).map(str::to_string)));
        }
    }
    out
}

/// A variable as its cache entry records it. A secret's value is only fingerprinted: one whose
/// name marks it, and any whose value holds a URL's credentials or a value the redactor masks
/// (`DB_URL=postgres://admin:pw@db`, a `--secret`'s value passed in an ARG too). Entries outlive
/// secrets: the next build's miss explanation quotes the recorded value, and that build cannot
/// mask a credential it was never given (a rotated one).
fn var(ctx: &BuildContext<'_>, kind: VarKind, name: &str, value: Option<String>) -> Var {
    let secret = |v: &str| {
        ctx.is_secret_arg(name) || !crate::secrets::url_credentials(v).is_empty() || ctx.redactor.redact(v) != v
    };
    let value = value.map(|v| if secret(&v) { crate::secrets::fingerprint(&v) } else { v });
    Var { kind, value }
}

fn redact_components(ctx: &BuildContext<'_>, mut c: KeyComponents) -> KeyComponents {
    if ctx.redactor.is_empty() {
        return c;
    }
    c.instruction = ctx.redactor.redact(&c.instruction);
    for link in &mut c.chain {
        link.instruction = ctx.redactor.redact(&link.instruction);
        for l in &mut link.stage_tail {
            l.instruction = ctx.redactor.redact(&l.instruction);
        }
    }
    c
}

/// Identifies a Dockerfile across builds (what its steps' pointer tags are named by): its path
/// inside the context, else its file name.
pub(super) fn dockerfile_id(dockerfile: &std::path::Path, context: &std::path::Path) -> String {
    let abs = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match abs(dockerfile).strip_prefix(abs(context)) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => dockerfile.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(paths: &[&str], var_run: bool) -> Option<Vec<String>> {
        let mut o = BuildOptions::new("Dockerfile", ".");
        o.layers.ignore_paths = paths.iter().map(|p| p.to_string()).collect();
        o.layers.ignore_var_run = var_run;
        ignored_paths(&o)
    }

    #[test]
    fn default_ignored_paths_are_not_recorded() {
        assert!(BuildOptions::new("Dockerfile", ".").layers.ignore_var_run, "kaniko's default");
        assert_eq!(ignored(&[], true), None);
        // The same set spelt otherwise: the same (default) key.
        assert_eq!(ignored(&["/var/run/app"], true), None);
        assert_eq!(ignored(&["/var/run/", "var/run"], false), None);
    }

    #[test]
    fn ignored_paths_are_normalised() {
        let want = Some(vec!["/ign".to_string(), "/var/run".to_string()]);
        assert_eq!(ignored(&["/ign"], true), want);
        assert_eq!(ignored(&["/ign/", "ign", "/ign/sub", "//ign/."], true), want);
        assert_eq!(ignored(&["/var/run", "/ign/"], false), want);
        assert_eq!(ignored(&["/b", "/a"], false), Some(vec!["/a".to_string(), "/b".to_string()]));
        assert_eq!(ignored(&[], false), Some(vec![]));
        assert_eq!(ignored(&["/var"], true), Some(vec!["/var".to_string()]));
    }
}
