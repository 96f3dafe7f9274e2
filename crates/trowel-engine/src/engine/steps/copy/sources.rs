//! Turning COPY/ADD source arguments into concrete paths: wildcards (Go `filepath.Match` per
//! path segment, as Docker), `.dockerignore`, `--parents` with its `/./` pivot, and `..` kept at
//! the root of the context, as BuildKit does.

use crate::dockerfile::DockerIgnore;
use crate::engine::error::StepError;
use crate::fs::root::Root;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
    Other,
}

#[derive(Debug)]
pub enum Item {
    /// A heredoc source: a file with this name and content.
    Inline { name: String, content: String },
    /// An ADD URL.
    Url(String),
    /// An ADD git repository.
    Git(String),
    /// A path in the source root (relative, `/`-separated, symlinks in it resolved).
    /// `target_rel` is set with `--parents`: where below the destination it goes.
    /// `name` is the file name a destination directory gets (the source's own name, also when it
    /// is a symlink that was followed).
    Path { rel: String, kind: SourceKind, name: String, target_rel: Option<String> },
}

/// Normalises a source path into its segments. `..` above the root stays at the root: BuildKit
/// joins every source onto `/` of the context (or of the `--from` stage), so `COPY .. .` copies
/// the whole context; only Docker's legacy builder refused such paths.
pub(super) fn normalize(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

pub(super) fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands one source argument. A wildcard may match nothing (an empty list), as in BuildKit.
pub fn expand(
    root: &Root,
    raw: &str,
    ignore: Option<&DockerIgnore>,
    is_context: bool,
    parents: bool,
) -> Result<Vec<Item>, StepError> {
    let invalid = StepError::Invalid;
    // `--parents` pivot: `a/./b/c` keeps only `b/c` below the destination.
    let (base_part, kept_part) = match raw.find("/./") {
        Some(i) if parents => (&raw[..i], Some(&raw[i + 3..])),
        _ => ("", None),
    };
    let segs = normalize(raw);
    let base_len = if kept_part.is_some() { normalize(base_part).len() } else { 0 };
    let excluded = |rel: &str| is_context && ignore.is_some_and(|i| !rel.is_empty() && i.is_excluded(rel));
    let wildcard = segs.iter().any(|s| has_wildcard(s));
    if wildcard {
        // The directory a wildcard is matched in must exist (BuildKit walks it); a wildcard that
        // matches nothing in it is not an error (BuildKit's AllowEmptyWildcard).
        let prefix = segs.iter().take_while(|s| !has_wildcard(s)).cloned().collect::<Vec<_>>().join("/");
        let hidden = is_context
            && !prefix.is_empty()
            && ignore.is_some_and(|i| i.is_excluded(&prefix) && i.can_skip_dir(&prefix));
        if hidden {
            return Err(invalid(format!("\"/{prefix}\": not found (excluded by .dockerignore)")));
        }
        if !prefix.is_empty() && root.stat(&prefix).map_err(StepError::fs(prefix.clone()))?.is_none() {
            return Err(invalid(format!("\"/{prefix}\": not found")));
        }
    }

    let mut matches: Vec<Vec<String>> = vec![Vec::new()];
    for (i, seg) in segs.iter().enumerate() {
        let mut next = Vec::new();
        for m in matches {
            // With --parents the source is an include pattern (BuildKit's patternmatcher), where
            // `**` is any number of directories, none included (`src/**/*.go` matches
            // `src/a.go` and `src/x/y/f.go`); last, it is everything below. Without it, a
            // source is a `filepath.Match` pattern per segment, where `**` is `*`.
            // (Before a `/./` pivot the source is still matched a segment at a time.)
            if parents && seg == "**" && i >= base_len {
                if i + 1 == segs.len() {
                    for name in list_dir(root, &m.join("/"))? {
                        let mut p = m.clone();
                        p.push(name);
                        next.push(p);
                    }
                } else {
                    directories_below(root, m, &mut next)?;
                }
            } else if has_wildcard(seg) {
                let dir = m.join("/");
                for name in list_dir(root, &dir)? {
                    if go_match(seg, &name).map_err(|e| invalid(format!("bad pattern {raw:?}: {e}")))? {
                        let mut p = m.clone();
                        p.push(name);
                        next.push(p);
                    }
                }
            } else {
                let mut p = m;
                p.push(seg.clone());
                next.push(p);
            }
        }
        next.sort();
        next.dedup();
        matches = next;
    }
    let mut items = Vec::new();
    for m in matches {
        let rel = m.join("/");
        if excluded(&rel) {
            continue;
        }
        let stat = root.stat(&rel).map_err(StepError::fs(rel.clone()))?;
        let Some(stat) = stat else {
            if wildcard {
                continue;
            }
            return Err(invalid(format!("\"/{rel}\": not found")));
        };
        let kind = if stat.is_dir() {
            SourceKind::Dir
        } else if stat.file_type == crate::fs::FileType::File {
            SourceKind::File
        } else {
            SourceKind::Other
        };
        let target_rel = if parents {
            let kept = &m[base_len.min(m.len())..];
            Some(kept.join("/"))
        } else {
            None
        };
        // Docker follows a symlink named as a source: copy what it points to, under its own name.
        let resolved = root.resolve(&rel).map_err(StepError::fs(rel.clone()))?;
        let resolved = resolved.trim_start_matches('/').to_string();
        let name = m.last().cloned().unwrap_or_default();
        items.push(Item::Path { rel: resolved, kind, name, target_rel: target_rel.filter(|t| !t.is_empty()) });
    }
    if items.is_empty() && !wildcard {
        return Err(invalid(format!("\"/{}\": not found (excluded by .dockerignore)", segs.join("/"))));
    }
    Ok(items)
}

/// `dir` and every directory below it (symlinks not followed, as BuildKit's walk does not).
fn directories_below(root: &Root, dir: Vec<String>, out: &mut Vec<Vec<String>>) -> Result<(), StepError> {
    let rel = dir.join("/");
    for name in list_dir(root, &rel)? {
        let child = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if root.lstat(&child).map_err(StepError::fs(child.clone()))?.is_some_and(|s| s.is_dir()) {
            let mut p = dir.clone();
            p.push(name);
            directories_below(root, p, out)?;
        }
    }
    out.push(dir);
    Ok(())
}

fn list_dir(root: &Root, dir: &str) -> Result<Vec<String>, StepError> {
    let resolved = if dir.is_empty() { "/".to_string() } else { root.resolve(dir).map_err(StepError::fs(dir))? };
    let host = root.host_path().join(resolved.trim_start_matches('/'));
    let rd = match std::fs::read_dir(&host) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(StepError::Io { what: format!("list {dir}"), source: e }),
    };
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(StepError::io(format!("list {dir}")))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Go's `path/filepath.Match` for one segment: `*`, `?`, `[...]` classes with ranges and `^`
/// negation, `\` escapes.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, String> {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    let (ok, len) = class(&p[pi..], n[ni])?;
                    if ok {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    if pi + 1 >= p.len() {
                        return Err("trailing backslash".into());
                    }
                    if p[pi + 1] == n[ni] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return Ok(false),
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    if pi < p.len() {
        // Validate the rest of the pattern so malformed classes are reported.
        if p[pi] == '[' {
            class(&p[pi..], '\0')?;
        }
        return Ok(false);
    }
    Ok(true)
}

/// Matches `c` against the class at the start of `p` (which starts with `[`); returns
/// (matched, length of the class in `p`).
fn class(p: &[char], c: char) -> Result<(bool, usize), String> {
    let mut i = 1;
    let negate = p.get(1) == Some(&'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else { return Err("unterminated [ in pattern".into()) };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i).ok_or("trailing backslash")?
        } else {
            ch
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            i += 1;
            let h = if p[i] == '\\' {
                i += 1;
                *p.get(i).ok_or("trailing backslash")?
            } else {
                p[i]
            };
            i += 1;
            h
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Ok((matched != negate, i))
}

#[cfg(test)]
mod tests {
    use super::go_match;

    #[test]
    fn go_filepath_match() {
        let cases = [
            ("*.txt", "a.txt", true),
            ("*.txt", ".txt", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*", "anything", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[[]", "[", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(go_match(p, n).unwrap(), want, "{p} vs {n}");
        }
        assert!(go_match("[a-", "a").is_err());
    }
}
