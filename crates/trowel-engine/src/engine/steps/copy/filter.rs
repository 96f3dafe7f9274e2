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
        if excludes.is_some_and(|x| x.is_excluded(sub)) {
            return Filter::Skip;
        }
        let ctx_rel = if rel.is_empty() { sub.to_string() } else { format!("{rel}/{sub}") };
        match ignore {
            Some(i) if i.is_excluded(&ctx_rel) => {
                if i.can_skip_dir(&ctx_rel) {
                    Filter::Skip
                } else {
                    Filter::Descend
                }
            }
            _ => Filter::Copy,
        }
    }
}
