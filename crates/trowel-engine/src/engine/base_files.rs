//! What a stage's base layers hold at the paths a viewer asks about (the debugger, traces with
//! contents), read once per build for both things asked of them: a path's metadata and content
//! digest ("before" figures, `before.rs`) and a small text file's content ("before" of a diff,
//! `contents`).
//!
//! Without the unpacked-layer store (a root unpacked into a plain directory: container
//! isolation, the debug pod's case, or no cache dir), a lookup is a pass over the base layer
//! blobs: inflating a Debian base is a quarter of a second. Each of the two viewers made its
//! own pass for every step that changed a base file, so a traced `RUN rm /etc/issue` took half
//! a second longer than the same step untraced. A stage's base layers do not change during a
//! build, so what they hold at a path is read once, for both, and kept: one pass for a step
//! whose changed paths were not asked about before, none for a step that only changes paths
//! seen already. Contents go to the content pack as they are read (memory keeps digests).
//!
//! Only answers a pass gave are kept: a path no layer held may be one a layer that could not be
//! read holds, so it is asked again (a "before" shown is never a guess kept for the build).

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::digest::{Digest, Hasher};
use crate::engine::contents::{ContentPack, as_text};
use crate::engine::context::BuildContext;
use crate::engine::layer::StageLayer;
use crate::engine::layer_paths::Found;
use crate::fs::PrevMeta;

/// A path as a stage's base layers hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseFile {
    /// Its metadata; a regular file's content digest when it could be read.
    pub meta: PrevMeta,
    /// Where the content pack has a regular file's content: one of at most `limit` bytes that
    /// is text (UTF-8 without NUL bytes).
    pub text: Option<Digest>,
}

/// The paths of each stage's base layers looked up so far in this build.
#[derive(Clone)]
pub(crate) struct BaseFiles {
    pack: ContentPack,
    /// Largest content kept as text.
    limit: u64,
    /// (stage, path) → what the base layers hold there (`None`: a later layer removed it).
    seen: HashMap<(usize, String), Option<BaseFile>>,
}

/// One pass over the base layers: for each wanted path they hold, what the reader made of it
/// (`None`: removed by a later layer); a path they do not hold is absent.
type Pass<'p> = dyn FnMut(&HashSet<&str>, &mut dyn FnMut(&mut Found<'_>) -> Option<BaseFile>) -> HashMap<String, Option<BaseFile>>
    + 'p;

impl BaseFiles {
    pub fn new(pack: ContentPack, limit: u64) -> BaseFiles {
        BaseFiles { pack, limit, seen: HashMap::new() }
    }

    /// Takes in what a lane of a build for several platforms looked up.
    pub fn absorb(&mut self, other: BaseFiles) {
        self.seen.extend(other.seen);
    }

    /// What the base layers of stage `stage` (the layers of `layers` that no step of that
    /// stage made) hold at `paths`: those not looked up yet are read in one pass. A path with
    /// no answer is absent from the result, as from [`crate::engine::layer_paths::read_paths`].
    pub fn get(
        &mut self,
        ctx: &BuildContext<'_>,
        stage: usize,
        layers: &[StageLayer],
        paths: &[&str],
    ) -> HashMap<String, Option<BaseFile>> {
        let base: Vec<StageLayer> =
            layers.iter().filter(|l| l.step().is_none_or(|id| id.stage != stage)).cloned().collect();
        self.get_with(stage, paths, &mut |wanted, read| {
            crate::engine::layer_paths::read_paths(ctx, &base, wanted, |found| read(found))
        })
    }

    /// [`get`](Self::get) with the pass given: what tests drive.
    fn get_with(&mut self, stage: usize, paths: &[&str], pass: &mut Pass<'_>) -> HashMap<String, Option<BaseFile>> {
        let unseen: HashSet<&str> =
            paths.iter().copied().filter(|p| !self.seen.contains_key(&(stage, p.to_string()))).collect();
        if !unseen.is_empty() {
            let (pack, limit) = (self.pack.clone(), self.limit);
            let found = pass(&unseen, &mut |found| Some(read_base_file(found, &pack, limit)));
            for (p, v) in found {
                self.seen.insert((stage, p), v);
            }
        }
        paths
            .iter()
            .filter_map(|p| self.seen.get(&(stage, p.to_string())).map(|v| (p.to_string(), v.clone())))
            .collect()
    }
}

/// What a base layer's entry is: its metadata, and for a regular file its digest (the whole
/// content hashed) and, when small text, its content put in `pack`.
fn read_base_file(found: &mut Found<'_>, pack: &ContentPack, limit: u64) -> BaseFile {
    let mut meta = PrevMeta {
        file_type: found.file_type,
        size: found.size,
        mode: found.mode,
        uid: found.uid,
        gid: found.gid,
        link_target: found.link_target.take(),
        mtime: found.mtime,
        digest: None,
    };
    let mut text = None;
    if let Some(content) = found.content.as_mut() {
        let keep = found.size <= limit;
        let mut kept = Vec::new();
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        let whole = loop {
            match content.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    // One byte past the limit tells a file that grew since its header apart.
                    if keep && kept.len() as u64 <= limit {
                        let room = (limit + 1 - kept.len() as u64).min(n as u64) as usize;
                        kept.extend_from_slice(&buf[..room]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if whole {
            meta.digest = Some(hasher.finish().into());
            let small = keep && kept.len() as u64 <= limit;
            text = small.then(|| as_text(kept)).flatten().and_then(|t| pack.put(t.as_bytes()).ok());
        }
    }
    BaseFile { meta, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FileType;

    fn pack() -> (tempfile::TempDir, ContentPack) {
        let dir = tempfile::tempdir().unwrap();
        let pack = ContentPack::create_in(dir.path()).unwrap();
        (dir, pack)
    }

    /// A pass over a fake base: `files` are its regular files, `removed` its whited-out paths;
    /// counts its passes and the paths each was asked for.
    struct FakeBase {
        files: HashMap<&'static str, Vec<u8>>,
        removed: Vec<&'static str>,
        passes: Vec<Vec<String>>,
    }

    impl FakeBase {
        fn new(files: &[(&'static str, &[u8])]) -> FakeBase {
            FakeBase { files: files.iter().map(|(p, c)| (*p, c.to_vec())).collect(), removed: vec![], passes: vec![] }
        }

        fn get(&mut self, base: &mut BaseFiles, stage: usize, paths: &[&str]) -> HashMap<String, Option<BaseFile>> {
            let files = self.files.clone();
            let removed = self.removed.clone();
            let passes = &mut self.passes;
            base.get_with(stage, paths, &mut |wanted, read| {
                let mut asked: Vec<String> = wanted.iter().map(|p| p.to_string()).collect();
                asked.sort();
                passes.push(asked);
                let mut out = HashMap::new();
                for p in wanted {
                    if removed.contains(p) {
                        out.insert(p.to_string(), None);
                    } else if let Some(c) = files.get(p) {
                        let mut r: &[u8] = c;
                        let mut found = Found {
                            file_type: FileType::File,
                            size: c.len() as u64,
                            mode: 0o644,
                            uid: 0,
                            gid: 0,
                            mtime: Some(1),
                            link_target: None,
                            content: Some(&mut r),
                        };
                        out.insert(p.to_string(), read(&mut found));
                    }
                }
                out
            })
        }
    }

    #[test]
    fn a_path_is_read_once_for_both_viewers_and_unseen_ones_in_one_pass() {
        let (_d, pack) = pack();
        let mut base = BaseFiles::new(pack.clone(), 16);
        let mut fake =
            FakeBase::new(&[("/etc/issue", b"Debian\n"), ("/etc/big", &[b'x'; 100]), ("/bin/x", b"\x7fELF\0")]);
        fake.removed.push("/etc/gone");

        let got = fake.get(&mut base, 0, &["/etc/issue", "/etc/big", "/bin/x", "/etc/gone", "/nowhere"]);
        assert_eq!(fake.passes.len(), 1);
        let issue = got["/etc/issue"].clone().unwrap();
        assert_eq!(issue.meta.digest, Some(Digest::of(b"Debian\n").into()));
        assert_eq!(pack.read(issue.text.as_ref().unwrap()).unwrap(), b"Debian\n");
        // A large file has its digest (the whole content) and no text; a binary one no text.
        let big = got["/etc/big"].clone().unwrap();
        assert_eq!((big.meta.digest, big.text), (Some(Digest::of(&[b'x'; 100]).into()), None));
        assert_eq!(got["/bin/x"].clone().unwrap().text, None);
        assert_eq!(got["/etc/gone"], None);
        assert!(!got.contains_key("/nowhere"));

        // The same paths again (the other viewer, a later step): no pass; a new one with them:
        // one pass, for the new one and the one no layer held (it may be asked again).
        let again = fake.get(&mut base, 0, &["/etc/issue", "/etc/gone"]);
        assert_eq!(fake.passes.len(), 1);
        assert_eq!(again["/etc/issue"].clone().unwrap().meta.digest, issue.meta.digest);
        fake.files.insert("/etc/new", b"new\n".to_vec());
        fake.get(&mut base, 0, &["/etc/issue", "/etc/new", "/nowhere"]);
        assert_eq!(
            fake.passes,
            vec![vec!["/bin/x", "/etc/big", "/etc/gone", "/etc/issue", "/nowhere"], vec!["/etc/new", "/nowhere"]]
        );
        // Another stage has other base layers.
        fake.get(&mut base, 1, &["/etc/issue"]);
        assert_eq!(fake.passes.len(), 3);
    }

    #[test]
    fn a_file_at_the_limit_is_text_and_one_byte_more_is_not() {
        let (_d, pack) = pack();
        let mut base = BaseFiles::new(pack.clone(), 4);
        let mut fake = FakeBase::new(&[("/a", b"abcd"), ("/b", b"abcde")]);
        let got = fake.get(&mut base, 0, &["/a", "/b"]);
        assert_eq!(pack.read(got["/a"].clone().unwrap().text.as_ref().unwrap()).unwrap(), b"abcd");
        let b = got["/b"].clone().unwrap();
        assert_eq!((b.text, b.meta.digest), (None, Some(Digest::of(b"abcde").into())));
    }
}
