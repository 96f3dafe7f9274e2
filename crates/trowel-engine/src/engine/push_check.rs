//! kaniko's push permission check: before anything is built, every destination must accept a
//! push. It runs in the background while bases resolve and cache lookups go out; the first
//! step that does work (or misses the cache) waits for it, so a refused push still fails the
//! build before anything was built.

use crate::engine::context::BuildContext;
use crate::engine::error::{BuildError, PushError};
use crate::registry::{Reference, RegistryError};

#[derive(Default)]
pub(crate) struct PushCheck {
    /// Checks still out, by destination.
    pending: Vec<(String, tokio::task::JoinHandle<Result<(), RegistryError>>)>,
}

impl PushCheck {
    /// Starts checking every destination (each repository once).
    pub fn start(ctx: &BuildContext<'_>) -> Result<PushCheck, BuildError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut pending = Vec::new();
        for d in &ctx.opts.output.destinations {
            let r = Reference::parse(d).map_err(|e| {
                BuildError::Options(format!(
                    "invalid --destination {:?}: {e}",
                    crate::registry::reference::masked_userinfo(d)
                ))
            })?;
            if !seen.insert(r.repo_ref()) {
                continue;
            }
            let registry = ctx.registry.clone();
            pending.push((d.clone(), ctx.rt.spawn(async move { registry.check_push_access(&r).await })));
        }
        Ok(PushCheck { pending })
    }

    /// Waits for the checks still out; the first refusal fails the build.
    pub fn finish(&mut self, ctx: &BuildContext<'_>) -> Result<(), BuildError> {
        for (destination, h) in std::mem::take(&mut self.pending) {
            match ctx.rt.block_on(h) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(BuildError::Push { destination, source: PushError::Registry(e) }),
                Err(e) => return Err(BuildError::Push { destination, source: PushError::Check(e.to_string()) }),
            }
        }
        Ok(())
    }
}
