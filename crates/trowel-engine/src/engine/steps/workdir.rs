//! WORKDIR: set the working directory (relative to the previous one) and create it, owned by
//! the current USER as BuildKit does, if the image lacks it.

use crate::engine::build::Engine;
use crate::engine::error::BuildError;
use crate::engine::stage::StageState;
use crate::engine::steps::layer::{Scope, Stamp, commit, empty_history};
use crate::engine::steps::run::resolve_stage_user;
use crate::engine::steps::{StepCtx, StepOutcome};
use trowel_events::StepStatus;

pub fn workdir(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    ctx: &StepCtx<'_>,
    dir: &str,
) -> Result<StepOutcome, BuildError> {
    if dir.is_empty() {
        return Err(ctx.fail("WORKDIR requires a path"));
    }
    let base = st.config.working_dir().unwrap_or("/").to_string();
    let path = join_clean(&base, dir);
    st.config.set_working_dir(&path);
    create(engine, st, ctx, &path)
}

/// Creates the working directory, owned by the current USER, if the image lacks it.
fn create(
    engine: &mut Engine<'_>,
    st: &mut StageState,
    ctx: &StepCtx<'_>,
    path: &str,
) -> Result<StepOutcome, BuildError> {
    engine.ensure_root(st)?;
    let user = resolve_stage_user(st, ctx)?;
    let root = st.root.as_ref().expect("root ensured").root();
    let created = root
        .mkdir_all(path, 0o755, Some((user.ids.uid, user.ids.gid)))
        .map_err(|e| ctx.fail(format!("create {path}: {e}")))?;
    if created.is_empty() {
        empty_history(engine, st, &ctx.display, Stamp::Inherit);
        return Ok(StepOutcome::metadata());
    }
    let top = created[0].clone();
    let layer = commit(engine, st, ctx.id, Scope::Paths(vec![top]), &ctx.display)?;
    Ok(StepOutcome { status: StepStatus::Built, layer })
}

/// Joins `p` onto `base` (when relative) and normalises it like Go's `path.Clean`.
pub fn join_clean(base: &str, p: &str) -> String {
    let joined = if p.starts_with('/') { p.to_string() } else { format!("{base}/{p}") };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::join_clean;

    #[test]
    fn join_and_clean() {
        assert_eq!(join_clean("/", "app"), "/app");
        assert_eq!(join_clean("/app", "src/../lib/"), "/app/lib");
        assert_eq!(join_clean("/app", "/abs"), "/abs");
        assert_eq!(join_clean("/", "../.."), "/");
    }
}
