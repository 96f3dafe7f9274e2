//! Which paths below a copied directory are copied: `--exclude` patterns (relative to the
//! copied directory) and `.dockerignore` (relative to the context, with `!` exceptions that can
//! re-include paths below an excluded directory). Shared by the copy itself and by the cache key,
//! so the key covers exactly the files that are copied.

use crate::dockerfile::DockerIgnore;
use crate::fs::copy::Filter;

/// The filter for copying directory `rel` (relative to the source root).
pub fn for_dir<'a>(
    rel: &'a str,
    excludes: Option<&'a DockerIgnore>,
    ignore: Option<&'a DockerIgnore>,
) -> impl Fn(&str) -> Filter + 'a {
    move |sub: &str| {
        if sub.is_empty() {
            return Filter::Copy;
        }
        let by_excludes = excludes.map_or(Filter::Copy, |x| excluded(x, sub));
        if by_excludes == Filter::Skip {
            return Filter::Skip;
        }
        let ctx_rel = if rel.is_empty() { sub.to_string() } else { format!("{rel}/{sub}") };
        match ignore.map_or(Filter::Copy, |i| excluded(i, &ctx_rel)) {
            Filter::Copy => by_excludes,
            stronger => stronger,
        }
    }
}

/// How `patterns` (an ignore file's, or `--exclude`'s) treat `rel`: copied; skipped with all
/// below it; or, when a later `!` pattern may bring back something below an excluded
/// directory, walked without copying the directory itself, what is brought back getting its
/// parents made (fsutil walks into such a directory: `excludePatternMatcher.Exclusions()`).
/// `COPY --exclude=a --exclude=!a/b/keep.md` copies `a/b/keep.md`, as BuildKit does.
pub fn excluded(patterns: &DockerIgnore, rel: &str) -> Filter {
    if !patterns.is_excluded(rel) {
        Filter::Copy
    } else if patterns.can_skip_dir(rel) {
        Filter::Skip
    } else {
        Filter::Descend
    }
}
