//! Engine values as events report them: the conversions from the engine's own types (fs
//! changes, cache key components) to the contract's (`trowel_events`). Kept in one place so
//! that a change to either side shows up here, as a compile error, rather than in the trace
//! format.

use trowel_events as ev;

use crate::cache::key::{KeyComponents, VarKind};
use crate::dockerfile::Plan;
use crate::engine::mounts::{From, Resolved, What};
use crate::fs::{Change, ChangeKind, FileType, PrevMeta};

/// A fetched build context as `build_started` reports it.
pub(crate) fn context_origin(o: &crate::engine::remote_context::ContextOrigin) -> ev::ContextOrigin {
    ev::ContextOrigin {
        kind: o.kind.to_string(),
        source: o.source.clone(),
        reference: o.reference.clone(),
        commit: o.commit.clone(),
        digest: (&o.digest).into(),
        bytes: o.bytes,
        files: o.files,
        sub_path: o.sub_path.clone(),
        time: o.time,
    }
}

pub(crate) fn file_type(t: FileType) -> ev::FileType {
    match t {
        FileType::File => ev::FileType::File,
        FileType::Dir => ev::FileType::Dir,
        FileType::Symlink => ev::FileType::Symlink,
        FileType::Hardlink => ev::FileType::Hardlink,
        FileType::CharDevice => ev::FileType::CharDevice,
        FileType::BlockDevice => ev::FileType::BlockDevice,
        FileType::Fifo => ev::FileType::Fifo,
        FileType::Socket => ev::FileType::Socket,
    }
}

/// A change's size as events report it: a regular file's bytes, 0 for anything else (the
/// events' contract). A walk sees a symlink's `st_size` (its target's length) and a hard link's
/// file size, a layer's listing 0: one figure for both.
fn content_size(t: FileType, size: u64) -> u64 {
    if t == FileType::File { size } else { 0 }
}

fn previous(p: &PrevMeta) -> ev::PrevMeta {
    ev::PrevMeta {
        file_type: file_type(p.file_type),
        size: content_size(p.file_type, p.size),
        mode: p.mode,
        uid: p.uid,
        gid: p.gid,
        link_target: p.link_target.clone(),
        mtime: p.mtime,
        digest: p.digest.map(Into::into),
    }
}

pub(crate) fn change(c: &Change) -> ev::Change {
    into_change(c.clone())
}

/// Converts by value: a step's changes can be 100,000 entries, and moving their strings (the
/// vector is reused in place when the two types have the same layout) keeps a snapshot event
/// from costing a second copy of them.
fn into_change(c: Change) -> ev::Change {
    ev::Change {
        path: c.path,
        kind: match c.kind {
            ChangeKind::Added => ev::ChangeKind::Added,
            ChangeKind::Modified => ev::ChangeKind::Modified,
            ChangeKind::Deleted => ev::ChangeKind::Deleted,
        },
        file_type: file_type(c.file_type),
        size: content_size(c.file_type, c.size),
        mode: c.mode,
        uid: c.uid,
        gid: c.gid,
        mtime: c.mtime,
        link_target: c.link_target,
        digest: c.digest.map(Into::into),
        opaque: c.opaque,
        previous: c.previous.as_deref().map(|p| Box::new(previous(p))),
    }
}

pub(crate) fn changes(cs: &[Change]) -> Vec<ev::Change> {
    cs.iter().map(change).collect()
}

/// [`changes`], consuming them. Converted from the end a chunk at a time, the source giving its
/// memory back as it goes: a step's change list is its biggest structure (a COPY of 100,000
/// files: about 25 MB each way), and both lists whole at once were such a build's peak. The
/// new list's pages are touched only as it fills.
pub(crate) fn into_changes(mut cs: Vec<Change>) -> Vec<ev::Change> {
    const CHUNK: usize = 4096;
    let mut out = Vec::with_capacity(cs.len());
    while !cs.is_empty() {
        let keep = cs.len().saturating_sub(CHUNK);
        out.extend(cs.drain(keep..).rev().map(into_change));
        cs.shrink_to_fit();
    }
    out.reverse();
    out
}

pub(crate) fn snapshot_stats(s: &crate::fs::SnapshotStats) -> ev::SnapshotStats {
    ev::SnapshotStats {
        files_walked: s.files_walked,
        bytes_hashed: s.bytes_hashed,
        duration_ms: s.duration_ms,
        unlisted: None,
    }
}

/// A `snapshot` event's list and counters, consuming a step's changes: the changes themselves
/// when a consumer of the events keeps per-file lists (`lists`: [`ev::Detail::file_lists`]),
/// else only how many there were (`unlisted`), the list never converted. A log prints that
/// number alone, and for a COPY of 100,000 files the converted list was 16 MB.
pub(crate) fn snapshot_of(
    cs: Vec<Change>,
    s: &crate::fs::SnapshotStats,
    lists: bool,
) -> (Vec<ev::Change>, ev::SnapshotStats) {
    let stats = snapshot_stats(s);
    if lists { (into_changes(cs), stats) } else { (Vec::new(), unlisted(stats, cs.len())) }
}

/// [`snapshot_of`] for changes the caller keeps.
pub(crate) fn snapshot_listed(
    cs: &[Change],
    stats: ev::SnapshotStats,
    lists: bool,
) -> (Vec<ev::Change>, ev::SnapshotStats) {
    if lists { (changes(cs), stats) } else { (Vec::new(), unlisted(stats, cs.len())) }
}

fn unlisted(stats: ev::SnapshotStats, n: usize) -> ev::SnapshotStats {
    ev::SnapshotStats { unlisted: Some(n as u64), ..stats }
}

/// A key's components as events report them; its files only when a consumer keeps per-file
/// lists (`lists`: [`ev::Detail::file_lists`]), as the log does not (a COPY of 100,000 files
/// lists 100,000).
pub(crate) fn key_components(k: &KeyComponents, lists: bool) -> ev::KeyComponents {
    let files: &[crate::cache::key::FileEntry] = if lists { &k.files } else { &[] };
    ev::KeyComponents {
        version: k.version,
        platform: k.platform.clone(),
        layer_format: k.layer_format.clone(),
        ignored: k.ignored.clone(),
        parent: k.parent.clone(),
        linked: k.linked.clone(),
        instruction: k.instruction.clone(),
        vars: k
            .vars
            .iter()
            .map(|(name, v)| {
                let kind = match v.kind {
                    VarKind::Arg => ev::VarKind::Arg,
                    VarKind::Env => ev::VarKind::Env,
                };
                (name.clone(), ev::Var { kind, value: v.value.clone() })
            })
            .collect(),
        files: files
            .iter()
            .map(|f| ev::KeyFile {
                path: f.path.clone(),
                kind: f.kind,
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
                link: f.link.clone(),
                digest: f.digest.map(Into::into),
                xattrs: f.xattrs.clone(),
                hard_link: f.hard_link.clone(),
            })
            .collect(),
        sources: k.sources.clone(),
        user: k.user.clone(),
        shell: k.shell.clone(),
        line: k.line,
        chain: k
            .chain
            .iter()
            .map(|l| ev::ChainLink { line: l.line, instruction: l.instruction.clone(), key: l.key.clone() })
            .collect(),
        base: k
            .base
            .as_ref()
            .map(|b| ev::BaseInfo { reference: b.reference.clone(), digest: b.digest.as_ref().map(Into::into) }),
    }
}

/// A mount as events report it: its type, target, where it comes from and its options —
/// never a secret's value (which the engine does not even hold here).
pub(crate) fn mount(m: &Resolved, plan: &Plan) -> ev::MountInfo {
    let stage_label = |i: usize| plan.stages[i].name.clone().unwrap_or_else(|| format!("stage {i}"));
    let from_label = |f: &From| match f {
        From::Context => "context".to_string(),
        From::Stage(i) => format!("stage {}", stage_label(*i)),
        From::Image(r) => format!("image {r}"),
    };
    let mut options = Vec::new();
    let (from, source, id) = match &m.what {
        What::Bind { from, source, rw } => {
            options.push(if *rw { "rw".into() } else { "ro".into() });
            (Some(from_label(from)), Some(source.clone()), None)
        }
        What::Cache { id, sharing, from, source, readonly } => {
            options.push(format!("sharing={}", sharing.as_str()));
            options.push(if *readonly { "ro".into() } else { "rw".into() });
            (from.as_ref().map(from_label), from.as_ref().map(|_| source.clone()), Some(id.clone()))
        }
        What::Tmpfs { size } => {
            if let Some(s) = size {
                options.push(format!("size={s}"));
            }
            (None, None, None)
        }
        What::Secret { id, env, required, .. } => {
            if let Some(e) = env {
                options.push(format!("env={e}"));
            }
            if *required {
                options.push("required".into());
            }
            (None, None, Some(id.clone()))
        }
        What::Ssh { id, required, .. } => {
            if *required {
                options.push("required".into());
            }
            (None, None, Some(id.clone()))
        }
    };
    if let What::Cache { .. } | What::Secret { .. } | What::Ssh { .. } = &m.what {
        let (mode, uid, gid) = match &m.what {
            What::Secret { mode, uid, gid, .. } | What::Ssh { mode, uid, gid, .. } => (Some(*mode), *uid, *gid),
            _ => (m.spec.mode, m.spec.uid.unwrap_or(0), m.spec.gid.unwrap_or(0)),
        };
        // A secret given only as an environment variable has no file to have a mode.
        if let Some(mode) = mode.filter(|_| m.target.is_some()) {
            options.push(format!("mode={mode:04o}"));
        }
        if uid != 0 || gid != 0 {
            options.push(format!("uid={uid}"));
            options.push(format!("gid={gid}"));
        }
    }
    ev::MountInfo { kind: m.spec.kind.as_str().to_string(), target: m.target.clone(), from, source, id, options }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract mirrors these engine types field for field: their JSON must be the same, or
    /// traces would change when engine types do (or the other way round).
    #[test]
    fn reported_values_serialise_as_the_engine_values_do() {
        let c = Change {
            path: "/etc/x".into(),
            kind: ChangeKind::Modified,
            file_type: FileType::CharDevice,
            // Only a regular file has a size in events (a device's, a link's is 0).
            size: 0,
            mode: 0o4755,
            uid: 1,
            gid: 2,
            mtime: 99,
            link_target: Some("y".into()),
            digest: Some(crate::digest::Digest::of(b"x").into()),
            opaque: true,
            previous: Some(Box::new(PrevMeta {
                file_type: FileType::Symlink,
                size: 0,
                mode: 0o777,
                uid: 0,
                gid: 0,
                link_target: Some("z".into()),
                mtime: Some(98),
                digest: Some(crate::digest::Digest::of(b"w").into()),
            })),
        };
        assert_eq!(serde_json::to_value(change(&c)).unwrap(), serde_json::to_value(&c).unwrap());
        let link = Change { file_type: FileType::Symlink, size: 5, ..c.clone() };
        assert_eq!(change(&link).size, 0, "a symlink's st_size is its target's length, not content");
        let text = r#"{"version":1,"platform":"linux/amd64","layer_format":"gzip","parent":"p","instruction":"COPY a b",
            "vars":{"V":{"kind":"ARG","value":"1"}},"files":[{"path":"a","kind":"f","mode":420,"uid":0,"gid":0,
            "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
            "sources":{"stage:b":"k"},"line":3,"chain":[{"line":1,"instruction":"FROM x","key":"r"}],
            "base":{"reference":"x","digest":null}}"#;
        let k: KeyComponents = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(key_components(&k, true)).unwrap(), serde_json::to_value(&k).unwrap());
    }

    /// Converting a long list a chunk at a time from its end keeps every change, in order.
    #[test]
    fn a_long_list_converts_whole_and_in_order() {
        let one = |i: usize| Change {
            path: format!("/f{i:06}"),
            kind: ChangeKind::Added,
            file_type: FileType::File,
            size: i as u64,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            link_target: None,
            digest: Some(crate::digest::Digest::of(i.to_string().as_bytes()).into()),
            opaque: false,
            previous: None,
        };
        for n in [0, 1, 4095, 4096, 4097, 10_000] {
            let cs: Vec<Change> = (0..n).map(one).collect();
            let want = changes(&cs);
            assert_eq!(into_changes(cs), want, "{n} changes");
        }
    }
}
