//! What a RUN's mounts add to its cache key (BuildKit's semantics): every mount's specification
//! (type, target, options — the canonical form, so `ro` and `readonly=true` key alike), and for
//! a bind mount what it shows: the files of a context path (names, metadata and content, as
//! COPY's key covers its sources), those of another stage's path (as the RUN sees them, at the
//! mount's target, owners kept: BuildKit keys a read-only mount by its content; found as
//! `COPY --from`'s are, `steps/copy/from_files.rs`), an image's digest. Never what a cache
//! mount holds, and never a secret's value: the secret's id and options are all its spec has.

use std::collections::BTreeMap;

use trowel_events::StepId;

use crate::cache::key::{FileEntry, UNHASHED_SOURCE};
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::engine::layer_cache::copy_from::CopyFromRecords;
use crate::engine::mounts::{From, StepMounts, What};
use crate::engine::stages::Stages;
use crate::engine::steps::copy::from_files;
use crate::engine::steps::copy::keyfiles::context_tree;
use crate::engine::steps::copy::seen::Seen;

/// Files, `sources` entries and the context files as the key saw them.
type MountKeyInputs = (Vec<FileEntry>, BTreeMap<String, String>, Seen);

/// The key inputs of a step's mounts: files (context binds) and `sources` entries, one per
/// mount, named `mount <target>` (`mount env <VAR>` for an environment-only secret); with the
/// context files as the key saw them.
pub(crate) fn key_inputs(
    ctx: &BuildContext<'_>,
    stages: &mut Stages,
    records: &CopyFromRecords,
    step: StepId,
    mounts: &StepMounts,
) -> Result<MountKeyInputs, StepError> {
    let mut files = Vec::new();
    let mut seen = Seen::default();
    let mut sources = BTreeMap::new();
    for m in &mounts.mounts {
        let name = match (&m.target, &m.what) {
            (Some(t), _) => format!("mount {t}"),
            (None, What::Secret { env: Some(v), .. }) => format!("mount env {v}"),
            (None, _) => format!("mount {}", m.spec.kind),
        };
        let mut value = m.spec.canonical();
        if let What::Bind { from, source, .. } = &m.what {
            match from {
                From::Context => {
                    let (f, s) = context_tree(ctx, source)?;
                    files.extend(f);
                    seen.extend(s);
                }
                From::Stage(p) => {
                    let key = stages
                        .get(*p)
                        .and_then(|s| s.final_key.clone())
                        .ok_or_else(|| StepError::Invalid(format!("stage {} has no cache key", ctx.stage_label(*p))))?;
                    let target = m.target.as_deref().unwrap_or("/");
                    match from_files::mount_files(ctx, stages, records, *p, source, step)? {
                        // What the RUN sees: the files, at the target (as a COPY of them would
                        // be keyed); the stage's key unhashed, to say why they changed.
                        Some(shown) => {
                            files.extend(at_target(&shown, target));
                            sources.insert(format!("{UNHASHED_SOURCE}{}", ctx.stage_label(*p)), key);
                        }
                        None => value.push_str(&format!(" stage-key={key}")),
                    }
                }
                From::Image(r) => value
                    .push_str(&format!(" digest={}", ctx.resolve_once(r, mounts.platform.as_ref())?.manifest_digest)),
            }
        }
        sources.insert(name, value);
    }
    if mounts.network != crate::sandbox::Network::Host {
        sources.insert("network".into(), "none".into());
    }
    if mounts.insecure {
        sources.insert("security".into(), "insecure".into());
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup();
    Ok((files, sources, seen))
}

/// A stage's files below a mount's source (`""` the source itself) as the mount at `target`
/// shows them: each path, and each hard link's first path, below the target.
fn at_target(files: &[FileEntry], target: &str) -> Vec<FileEntry> {
    let target = target.trim_matches('/');
    let moved = |p: &str| match (target.is_empty(), p.is_empty()) {
        (true, _) => p.to_string(),
        (false, true) => target.to_string(),
        (false, false) => format!("{target}/{p}"),
    };
    files
        .iter()
        .map(|f| FileEntry { path: moved(&f.path), hard_link: f.hard_link.as_deref().map(moved), ..f.clone() })
        .collect()
}
