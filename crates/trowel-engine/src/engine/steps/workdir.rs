//! WORKDIR: set the working directory (relative to the previous one) and create it, owned by
//! the current USER as BuildKit's file operations resolve it (`USER 9999` gives 9999:9999,
//! `USER root` needs no /etc/passwd), if the image lacks it.

use crate::engine::error::{BuildError, StepError};
use crate::engine::steps::{Changed, FileCx, FileStep, Scope, owner};

pub(crate) struct Workdir {
    pub dir: String,
}

impl FileStep for Workdir {
    fn run(&self, cx: FileCx<'_, '_>) -> Result<Changed, BuildError> {
        let FileCx { ctx, at, config, root, .. } = cx;
        if self.dir.is_empty() {
            return Err(at.invalid("WORKDIR requires a path"));
        }
        let base = config.image.working_dir().unwrap_or("/").to_string();
        let path = join_clean(&base, &self.dir);
        config.image.set_working_dir(&path);
        // Created owned by the current USER, as BuildKit does, if the image lacks it.
        let user = config.image.user().unwrap_or("");
        let owner = owner::for_user(root.root(), at, user, &|w| ctx.emitter.warn(w))?;
        let created = root
            .root()
            .mkdir_all(&path, 0o755, Some(owner))
            .map_err(|e| at.fail(StepError::fs(format!("create {path}"))(e)))?;
        // With `SOURCE_DATE_EPOCH`, BuildKit dates the directories it makes by it.
        if let Ok(Some(secs)) = ctx.plan.source_date_epoch() {
            let t = crate::fs::Timespec::new(secs, 0);
            for dir in &created {
                root.root().set_times(dir, t, t).map_err(|e| at.fail(StepError::fs(format!("date {dir}"))(e)))?;
            }
        }
        Ok(match created.into_iter().next() {
            Some(top) => Changed::Files(Scope::Paths(vec![top])),
            None => Changed::Nothing,
        })
    }
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
