//! "Did you mean …?": BuildKit's `util/suggest.Search`, the closest of some names by edit
//! distance, closer than 3 edits; none when the name itself is among them.

/// The option closest to `name` (case-sensitive), the first of equals winning.
pub(crate) fn closest<'a>(name: &str, options: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<&str> = None;
    let mut min = 3;
    for opt in options {
        if opt == name {
            return None;
        }
        let d = distance(name, opt);
        if d < min {
            best = Some(opt);
            min = d;
        }
    }
    best
}

/// Levenshtein distance over characters (insertions, deletions, substitutions cost 1).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_two_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(closest("DIR_ASSET", ["DIR_BINARIES", "DIR_ASSETS", "DIR_CONFIG"]), Some("DIR_ASSETS"));
        assert_eq!(closest("BULIDPLATFORM", ["BUILDARCH", "BUILDPLATFORM"]), Some("BUILDPLATFORM"));
        assert_eq!(closest("PAHT", ["HOME", "PATH"]), Some("PATH"));
        assert_eq!(closest("version", ["tag", "TARGETOS"]), None);
        // Case counts, and an exact match means the name was not the problem.
        assert_eq!(closest("path", ["PATH"]), None);
        assert_eq!(closest("AB", ["AC", "AB"]), None);
        // The first of two equally close names.
        assert_eq!(closest("AB", ["AC", "AD"]), Some("AC"));
    }
}
