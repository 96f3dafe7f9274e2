//! The initial scan of a root with no index yet, on several threads
//! ([`Walker::scan_root_parallel`]).
//!
//! A cold build waits on this scan between its base's last file and its first step, and a file
//! system serialises lookups within a directory but not across directories: so the
//! directories near the top are handed out to whichever worker is free, and their children
//! grafted back into one tree at the end, the same tree one walker would have made.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Condvar, Mutex};

use rustix::fs::OFlags;

use super::{Node, Walker};
use crate::fs::snapshot::SnapshotStats;
use crate::fs::{FileType, FsError, path, sys};

/// How deep (in path components) a parallel initial scan hands directories out to its
/// workers: deep enough that no one directory holds most of a root (a Debian root's
/// `/usr/share` is two thirds of it, its subdirectories are a few percent each), shallow
/// enough that handing out costs nothing next to the walk (a few hundred directories).
const SPLIT_DEPTH: usize = 3;

/// The shared state of a parallel initial scan ([`Walker::scan_root_parallel`]).
pub(super) struct Split {
    state: Mutex<SplitState>,
    changed: Condvar,
}

#[derive(Default)]
struct SplitState {
    /// Directories waiting for a worker: their image path and an open descriptor.
    waiting: Vec<(String, OwnedFd)>,
    /// Directories waiting or being walked.
    outstanding: usize,
    /// Each walked directory's children, to be grafted into the tree at the end.
    walked: Vec<(String, Vec<Node>)>,
    /// The first failure; the other workers stop at their next directory.
    failed: Option<FsError>,
}

/// Most directories waiting for a worker, each holding a descriptor: a layer with many
/// directories near the top (it is hostile input) must not run the process out of them. A
/// directory met with this many waiting is walked where it is met.
const MAX_WAITING: usize = 64;

impl Split {
    fn has_room(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).waiting.len() < MAX_WAITING
    }

    fn hand_out(&self, dir: String, fd: OwnedFd) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.waiting.push((dir, fd));
        st.outstanding += 1;
        self.changed.notify_one();
    }
}

impl Split {
    /// Whether the directory at image path `p` goes to a worker rather than being walked where
    /// it is met: near enough the top, and room in the queue.
    pub(super) fn takes(&self, p: &str) -> bool {
        depth(p) <= SPLIT_DEPTH && self.has_room()
    }
}

impl<'a> Walker<'a> {
    /// A walker like this one, with state of its own, working for `split`.
    fn worker<'b>(&self, split: &'b Split) -> Walker<'b>
    where
        'a: 'b,
    {
        Walker {
            root: self.root,
            mode: self.mode,
            ignore: self.ignore,
            record: self.record,
            out: Vec::new(),
            multi_named: Vec::new(),
            stats: SnapshotStats::default(),
            buf: Vec::new(),
            birth: self.birth,
            defer: self.defer,
            lowers: self.lowers,
            pending: false,
            upper: self.upper,
            linked: self.linked,
            multi_linked: Vec::new(),
            split: Some(split),
            cancel: self.cancel,
            written: self.written,
        }
    }

    /// What [`Walker::scan_root`] of a root with no index yet returns, walked on `threads`
    /// threads (this one among them): the directories down to [`SPLIT_DEPTH`] are handed out,
    /// each walked by whichever worker is free, and their children grafted into the tree once
    /// all are done. Every directory is listed, and every name stat'ed, exactly as one walker
    /// would, so the tree is the same; only the order of the system calls differs. The
    /// initial scan is a cold build's wait between the base's last file and its first step
    /// (6,652 `statx` through overlayfs for a Debian root, each instantiating its dentry), and
    /// a file system serialises such lookups within a directory but not across directories.
    pub(crate) fn scan_root_parallel(&mut self, threads: usize) -> Result<Node, FsError> {
        let fd =
            self.root.open_in_root("", OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| self.err("open", "/", e))?;
        let meta = self.root_dir_meta(fd.as_fd(), None)?;
        let split = Split { state: Mutex::new(SplitState::default()), changed: Condvar::new() };
        split.hand_out("/".to_string(), fd);
        let results: Vec<(SnapshotStats, Vec<String>)> = std::thread::scope(|s| {
            let helpers: Vec<_> = (1..threads.max(1))
                .map(|_| {
                    let mut w = self.worker(&split);
                    s.spawn(move || {
                        w.work();
                        (w.stats, w.multi_linked)
                    })
                })
                .collect();
            let mut w = self.worker(&split);
            w.work();
            let mut all = vec![(w.stats, w.multi_linked)];
            // A worker that panicked leaves its directories unwalked: failing the scan is right.
            all.extend(helpers.into_iter().filter_map(|h| h.join().ok()));
            all
        });
        let st = split.state.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = st.failed {
            return Err(e);
        }
        if st.outstanding != 0 {
            return Err(self.err("walk", "/", io::Error::other("a worker of the parallel scan stopped")));
        }
        for (stats, linked) in results {
            self.stats.files_walked += stats.files_walked;
            self.stats.bytes_hashed += stats.bytes_hashed;
            self.multi_linked.extend(linked);
        }
        let mut walked: HashMap<String, Vec<Node>> = st.walked.into_iter().collect();
        let mut children = walked.remove("/").unwrap_or_default();
        graft(&mut children, "/", 1, &mut walked);
        Ok(Node { name: "".into(), meta, children })
    }

    /// A worker's loop: walks the directories handed out until none is left or one failed.
    fn work(&mut self) {
        let split = self.split.expect("a worker has its split");
        loop {
            let (dir, fd) = {
                let mut st = split.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if st.failed.is_some() || st.outstanding == 0 {
                        return;
                    }
                    if let Some(task) = st.waiting.pop() {
                        break task;
                    }
                    st = split.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A panic is carried on once the others know to stop (they would wait for this
            // directory forever).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.diff_children(fd.as_fd(), None, &dir, Vec::new())
            }));
            let mut st = split.state.lock().unwrap_or_else(|e| e.into_inner());
            st.outstanding -= 1;
            let panicked = match r {
                Ok(Ok(children)) => {
                    st.walked.push((dir, children));
                    None
                }
                Ok(Err(e)) => {
                    st.failed.get_or_insert(e);
                    None
                }
                Err(panic) => {
                    let e = self.err("walk", &dir, io::Error::other("a worker of the parallel scan panicked"));
                    st.failed.get_or_insert(e);
                    Some(panic)
                }
            };
            split.changed.notify_all();
            drop(st);
            if let Some(panic) = panicked {
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// Hands directory `name` of `dirfd` out to a worker of `split` (its children are grafted
    /// in later); one that is no directory any more has none, as in [`Walker::walk_dir`].
    pub(super) fn hand_out(&self, split: &Split, dirfd: BorrowedFd<'_>, name: &[u8], p: &str) -> Result<(), FsError> {
        match sys::open_dir_nofollow(dirfd, OsStr::from_bytes(name)) {
            Ok(fd) => split.hand_out(p.to_string(), fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) || e.raw_os_error() == Some(libc::ELOOP) => {}
            Err(e) => return Err(self.err("open directory", p, e)),
        }
        Ok(())
    }
}

/// Path components in an absolute image path (`/usr/share` has two).
fn depth(p: &str) -> usize {
    p.bytes().filter(|&b| b == b'/').count()
}

/// Puts each directory's children that a parallel scan walked apart (`walked`, by path) into
/// the tree under `dir` (`level`: its depth plus one); only directories down to
/// [`SPLIT_DEPTH`] were walked apart.
fn graft(children: &mut [Node], dir: &str, level: usize, walked: &mut HashMap<String, Vec<Node>>) {
    if walked.is_empty() || level > SPLIT_DEPTH {
        return;
    }
    for c in children.iter_mut().filter(|c| c.meta.kind == FileType::Dir) {
        let p = path::join(dir, &c.name);
        if let Some(grand) = walked.remove(&p) {
            c.children = grand;
        }
        graft(&mut c.children, &p, level + 1, walked);
    }
}
