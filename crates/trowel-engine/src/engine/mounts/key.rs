//! What a RUN's mounts add to its cache key (BuildKit's semantics): every mount's specification
//! (type, target, options — the canonical form, so `ro` and `readonly=true` key alike), and for
//! a bind mount what it shows: the files of a context path (names, metadata and content, as
//! COPY's key covers its sources), another stage's key, an image's digest. Never what a cache
//! mount holds, and never a secret's value: the secret's id and options are all its spec has.

use std::collections::BTreeMap;

use crate::cache::key::FileEntry;
use crate::engine::context::BuildContext;
use crate::engine::error::StepError;
use crate::engine::mounts::{From, StepMounts, What};
use crate::engine::stages::Stages;
use crate::engine::steps::copy::keyfiles::context_tree;
use crate::engine::steps::copy::seen::Seen;

/// Files, `sources` entries and the context files as the key saw them.
type MountKeyInputs = (Vec<FileEntry>, BTreeMap<String, String>, Seen);

/// The key inputs of a step's mounts: files (context binds) and `sources` entries, one per
/// mount, named `mount <target>` (`mount env <VAR>` for an environment-only secret); with the
/// context files as the key saw them.
pub(crate) fn key_inputs(
    ctx: &BuildContext<'_>,
    stages: &Stages,
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
                    value.push_str(&format!(" stage-key={key}"));
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
