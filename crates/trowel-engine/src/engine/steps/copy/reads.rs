//! What a COPY source argument reads from a stage's or an image's root, as paths resolved in
//! it: the directory a wildcard is matched in, and each path copied (its symlinks followed, as
//! `sources::expand` follows them). A partial extraction of the stage (`fs/extract.rs`) must
//! cover every one of them before the copy can read from it; this walk and `expand` take the
//! same steps, so what one reads the other has.
//!
//! Nothing here fails: a path that cannot be resolved (a symlink loop) is left out, and the
//! copy itself then reports it from the extracted root, where it resolves the same way.

use super::sources::{go_match, has_wildcard, normalize};
use crate::fs::root::Root;

/// The part of a source argument before its first wildcard, as an absolute image path: the
/// least a partial extraction must hold (`/out/*.so` → `/out`).
pub(crate) fn fixed_prefix(raw: &str) -> String {
    let segs = normalize(raw);
    let fixed: Vec<&str> = segs.iter().take_while(|s| !has_wildcard(s)).map(String::as_str).collect();
    format!("/{}", fixed.join("/"))
}

/// The resolved image paths copying `raw` from `root` reads (see the module comment).
pub(crate) fn reads(root: &Root, raw: &str) -> Vec<String> {
    let segs = normalize(raw);
    let mut out = Vec::new();
    let resolve = |rel: &str| root.resolve(&format!("/{rel}")).ok();
    let wildcard = segs.iter().any(|s| has_wildcard(s));
    if wildcard {
        // `expand` checks that the directory before the first wildcard exists.
        let prefix: Vec<&str> = segs.iter().take_while(|s| !has_wildcard(s)).map(String::as_str).collect();
        out.extend(resolve(&prefix.join("/")));
    }
    let mut matches: Vec<Vec<String>> = vec![Vec::new()];
    for seg in &segs {
        let mut next = Vec::new();
        for m in matches {
            if !has_wildcard(seg) {
                let mut p = m;
                p.push(seg.clone());
                next.push(p);
                continue;
            }
            let Some(dir) = resolve(&m.join("/")) else { continue };
            let names = root.read_dir(&dir).unwrap_or_default();
            out.push(dir);
            for name in names {
                // A malformed pattern fails the copy itself, from the extracted root.
                if go_match(seg, &name).unwrap_or(false) {
                    let mut p = m.clone();
                    p.push(name);
                    next.push(p);
                }
            }
        }
        matches = next;
    }
    out.extend(matches.iter().filter_map(|m| resolve(&m.join("/"))));
    out
}

#[cfg(test)]
#[path = "reads_tests.rs"]
mod tests;
