//! Which ids a rootless build's user namespace maps: the user's subordinate ranges from
//! `/etc/subuid` and `/etc/subgid` (shadow-utils' format, what `newuidmap` itself checks), the
//! mapping written from them, and what the running process's namespace maps
//! (`/proc/self/uid_map`: the initial namespace or how many ids another one has).
//!
//! The mapping is buildah's and podman's: the user becomes 0 of the namespace, and the user's
//! subordinate ranges follow it from 1 on, in file order. So an image's file owned by 100 is
//! owned on the host by the 100th id of the user's range, and inside the namespace — where the
//! engine snapshots and writes layers — by 100, exactly as when root builds it.

use std::io;
use std::path::Path;

/// One `owner:start:count` line of `/etc/subuid` or `/etc/subgid` that names the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The map of one id kind (users or groups): the user's own id as 0, then its ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    /// The user's id on the host (uid or gid), which becomes 0.
    pub own: u32,
    pub ranges: Vec<SubRange>,
}

impl IdMap {
    /// How many ids the namespace has: 1 when there are no ranges (the single-id mapping).
    pub fn size(&self) -> u64 {
        1 + self.ranges.iter().map(|r| u64::from(r.count)).sum::<u64>()
    }

    /// `inside host count` triples, as `newuidmap`/`newgidmap` take them after the pid (and as
    /// `/proc/<pid>/uid_map` takes them, one per line).
    pub fn triples(&self) -> Vec<(u32, u32, u32)> {
        let mut out = vec![(0, self.own, 1)];
        let mut inside: u32 = 1;
        for r in &self.ranges {
            out.push((inside, r.start, r.count));
            inside = inside.saturating_add(r.count);
        }
        out
    }

    /// The arguments after the pid for `newuidmap`/`newgidmap`.
    pub fn helper_args(&self) -> Vec<String> {
        self.triples().iter().flat_map(|(i, h, c)| [i.to_string(), h.to_string(), c.to_string()]).collect()
    }
}

/// The ranges `text` (the contents of `/etc/subuid` or `/etc/subgid`) gives the user called
/// `name` with id `id`: lines naming either, as `newuidmap` accepts them. Blank lines, comments
/// and malformed lines are skipped (shadow-utils skips them too); a range that would run past
/// the largest id, or that holds the user's own id (which is already mapped, to 0), is left out
/// rather than making the kernel refuse the whole map.
pub fn ranges_for(text: &str, name: Option<&str>, id: u32) -> Vec<SubRange> {
    let mut out: Vec<SubRange> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split(':');
        let (Some(owner), Some(start), Some(count), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let ours = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
        let (Ok(start), Ok(count)) = (start.parse::<u32>(), count.parse::<u32>()) else { continue };
        if !ours || count == 0 || u64::from(start) + u64::from(count) > u64::from(u32::MAX) {
            continue;
        }
        let holds_own = id >= start && u64::from(id) < u64::from(start) + u64::from(count);
        let overlaps = out.iter().any(|r| {
            u64::from(start) < u64::from(r.start) + u64::from(r.count)
                && u64::from(r.start) < u64::from(start) + u64::from(count)
        });
        if !holds_own && !overlaps {
            out.push(SubRange { start, count });
        }
    }
    out
}

/// [`ranges_for`] of a file; a file that does not exist gives no ranges.
pub fn ranges_in(file: &Path, name: Option<&str>, id: u32) -> io::Result<Vec<SubRange>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(ranges_for(&text, name, id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The user namespace the calling process is in, as its uid map says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// The initial namespace (`0 0 4294967295`): ids are the host's.
    Initial,
    /// A namespace mapping this many uids (1: the single-id mapping, where only 0 exists).
    Mapped { uids: u64 },
}

/// Reads `/proc/self/uid_map`.
pub fn current() -> io::Result<Namespace> {
    Ok(parse_uid_map(&std::fs::read_to_string("/proc/self/uid_map")?))
}

fn parse_uid_map(text: &str) -> Namespace {
    let triples: Vec<Vec<u64>> = text
        .lines()
        .map(|l| l.split_whitespace().filter_map(|f| f.parse().ok()).collect::<Vec<u64>>())
        .filter(|t| t.len() == 3)
        .collect();
    if triples.len() == 1 && triples[0] == [0, 0, u64::from(u32::MAX)] {
        return Namespace::Initial;
    }
    Namespace::Mapped { uids: triples.iter().map(|t| t[2]).sum() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_name_or_the_id_and_skip_what_newuidmap_would_refuse() {
        let text = "# comment\n\
                    alice:100000:65536\n\
                    bob:165536:65536\n\
                    1000:300000:10\n\
                    alice:x:5\n\
                    alice:100010:5\n\
                    alice:4294967290:10\n\
                    alice:999:2\n\
                    alice:200000:0\n";
        let r = ranges_for(text, Some("alice"), 1000);
        // The name's range, the uid's range; the overlapping, overflowing, own-id-holding, empty
        // and malformed ones left out.
        assert_eq!(r, vec![SubRange { start: 100000, count: 65536 }, SubRange { start: 300000, count: 10 }]);
        assert!(ranges_for(text, Some("carol"), 2000).is_empty());
    }

    #[test]
    fn the_map_puts_the_user_at_0_and_the_ranges_after_it() {
        let m = IdMap {
            own: 1000,
            ranges: vec![SubRange { start: 100000, count: 65536 }, SubRange { start: 300000, count: 10 }],
        };
        assert_eq!(m.triples(), vec![(0, 1000, 1), (1, 100000, 65536), (65537, 300000, 10)]);
        assert_eq!(m.helper_args().join(" "), "0 1000 1 1 100000 65536 65537 300000 10");
        assert_eq!(m.size(), 65547);
        assert_eq!(IdMap { own: 5, ranges: vec![] }.size(), 1);
    }

    #[test]
    fn the_initial_namespace_is_told_apart_from_a_mapped_one() {
        assert_eq!(parse_uid_map("         0          0 4294967295\n"), Namespace::Initial);
        assert_eq!(parse_uid_map("0 1000 1\n1 100000 65536\n"), Namespace::Mapped { uids: 65537 });
        assert_eq!(parse_uid_map("0 1000 1\n"), Namespace::Mapped { uids: 1 });
    }
}
