//! Lexical handling of image paths (`/a/b`, `a/b`, `./a/b/`).

use super::FsError;

/// The non-empty, non-`.` components of an image path. `..` is kept: callers either refuse it
/// (layer entries) or leave it to `RESOLVE_IN_ROOT`, which clamps it at the root.
pub(crate) fn components(p: &str) -> impl DoubleEndedIterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// The absolute, lexically cleaned form of an image path (`/` for the root). `..` components
/// are kept verbatim (see [`components`]).
pub(crate) fn clean(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 1);
    for c in components(p) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Rejects paths the kernel cannot take (NUL bytes).
pub(crate) fn check(p: &str) -> Result<(), FsError> {
    if p.as_bytes().contains(&0) {
        return Err(FsError::InvalidPath { path: p.to_string(), reason: "contains a NUL byte".into() });
    }
    Ok(())
}

/// Splits an image path into (parent as a relative path for `openat2`, final component).
/// The root itself yields `("", "")`. A final `..` is refused: it names no entry of its own.
pub(crate) fn split_parent(p: &str) -> Result<(String, &str), FsError> {
    check(p)?;
    let comps: Vec<&str> = components(p).collect();
    match comps.split_last() {
        None => Ok((String::new(), "")),
        Some((last, _)) if *last == ".." => {
            Err(FsError::InvalidPath { path: p.to_string(), reason: "final component is \"..\"".into() })
        }
        Some((last, parents)) => Ok((parents.join("/"), last)),
    }
}

/// `parent` (absolute, cleaned) joined with one component.
pub(crate) fn join(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + name.len() + 1);
    s.push_str(parent);
    if !parent.ends_with('/') {
        s.push('/');
    }
    s.push_str(name);
    s
}

/// The parent of an absolute cleaned path (`/` for top-level paths and the root).
pub(crate) fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

/// The final component of an absolute cleaned path (`""` for the root).
pub(crate) fn file_name(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// True when `p` is `ancestor` or lies below it (component-wise; both absolute and cleaned).
pub(crate) fn is_within(p: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return true;
    }
    p == ancestor || (p.starts_with(ancestor) && p.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_split() {
        assert_eq!(clean("./a//b/./c/"), "/a/b/c");
        assert_eq!(clean(""), "/");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("a/../b"), "/a/../b");
        assert_eq!(split_parent("/a/b/c").unwrap(), ("a/b".to_string(), "c"));
        assert_eq!(split_parent("c").unwrap(), (String::new(), "c"));
        assert_eq!(split_parent("/").unwrap(), (String::new(), ""));
        assert!(split_parent("/a/..").is_err());
        assert!(split_parent("a\0b").is_err());
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_within("/proc/1", "/proc"));
        assert!(is_within("/proc", "/proc"));
        assert!(!is_within("/process", "/proc"));
        assert!(is_within("/x", "/"));
    }
}
