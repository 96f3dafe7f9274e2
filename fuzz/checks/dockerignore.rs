//! `.dockerignore` matcher on arbitrary patterns and paths. Input: the ignore file's text, a NUL
//! byte, then context-relative paths one per line. Besides never panicking, the matcher must keep
//! its one promise to the context walker: when `can_skip_dir(d)` says a directory may be skipped,
//! nothing below it may be included (otherwise COPY would silently miss files).
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/dockerignore.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use trowel_engine::dockerfile::DockerIgnore;

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (patterns, paths) = text.split_once('\0').unwrap_or((text, "a\na/b\nsub/dir/file.txt\n.git/config"));
    let Ok(ignore) = DockerIgnore::parse(patterns) else { return };
    assert!(!ignore.is_excluded(""), "the context root is never excluded");
    assert!(!ignore.is_excluded("."), "the context root is never excluded");
    let paths: Vec<&str> = paths.lines().take(64).collect();
    for dir in &paths {
        let excluded = ignore.is_excluded(dir);
        if !ignore.can_skip_dir(dir) {
            continue;
        }
        assert!(excluded, "{dir:?} may be skipped but is not excluded (patterns {:?})", ignore.patterns());
        let dir = dir.trim_end_matches('/');
        if dir.is_empty() || dir.split('/').any(|c| c == ".." || c == ".") {
            // Cleaning changes what the path names; the walker never asks about such paths.
            continue;
        }
        for child in &paths {
            if child.is_empty() || child.starts_with('/') || child.split('/').any(|c| c == ".." || c == ".") {
                continue;
            }
            let below = format!("{dir}/{child}");
            assert!(
                ignore.is_excluded(&below),
                "{dir:?} may be skipped but {below:?} is included (patterns {:?})",
                ignore.patterns()
            );
        }
    }
    // The patterns the matcher shows identify it: given back as `COPY --exclude` patterns they
    // build the same matcher. Only where each shown pattern is a fixed point of that
    // normalisation: BuildKit's normalisation (trim, clean, then trim and clean again) is not
    // idempotent (`* / /` is held as `* `, which normalises to `*`), and an exception or a
    // pattern held with a leading `/` (from `/!/a` or `/ /a`) normalises to something else.
    // Not through `parse`: that would read a pattern starting with `#` or a BOM as file syntax.
    // `from_patterns` takes each pattern on its own, so its list equals the shown one exactly
    // when every shown pattern is such a fixed point.
    let shown = ignore.patterns();
    let again = match DockerIgnore::from_patterns(&shown) {
        Ok(again) if again.patterns() == shown => again,
        _ => return,
    };
    for p in &paths {
        assert_eq!(ignore.is_excluded(p), again.is_excluded(p), "{p:?} with {:?}", ignore.patterns());
    }
}
