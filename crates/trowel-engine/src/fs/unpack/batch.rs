//! Creating a layer's small files on several threads.
//!
//! A base image is mostly small files, and creating each is a handful of system calls that
//! are all kernel time (create, write, chown, chmod, set times, close). The kernel serialises
//! them within one directory but not across directories, so the unpacker collects runs of
//! consecutive small regular files into a batch and creates the batch on every core, one
//! directory per thread at a time. A batch ends before any entry that is not a small regular
//! file (directories, links, whiteouts, devices, large files): those can change what a path
//! resolves to, so they run alone, after everything before them is done, exactly as in a
//! sequential unpack.
//!
//! Each file is created relative to a descriptor of its (already resolved) directory with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, so nothing is followed or overwritten. It is created with its
//! permission bits and owned by whoever unpacks, so the `fchown` and `fchmod` that would only
//! repeat what creating it did are left out ([`Creation`]): for a base image unpacked as root,
//! most files need neither, and a file costs four system calls instead of six. A name that is
//! already taken (a lower layer's file, or the same path twice in this layer) is handed back
//! and replaced afterwards, in layer order, by the sequential path: the last entry wins, as
//! in any tar.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::Mode;

use crate::fs::written::ContentHasher;
use crate::fs::{FsError, Root, Timespec, WrittenContents};

/// Largest file whose content is held in memory in a batch.
pub(super) const SMALL_FILE: u64 = 256 * 1024;
/// A batch is created once it holds this many files...
const MAX_FILES: usize = 4096;
/// ...or this many bytes of content.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Below this many files a batch is created on the calling thread.
const PARALLEL_FROM: usize = 64;

/// One small regular file to create.
pub(super) struct Job {
    /// The directory it goes in, and that directory's resolved image path.
    pub dir: Arc<OwnedFd>,
    pub dir_path: String,
    pub name: String,
    /// Resolved image path (for errors and for the sequential retry).
    pub target: String,
    pub data: Vec<u8>,
    pub mode: u32,
    /// Owner to set, when owners are preserved and creating the file does not already give it
    /// (see [`Creation::chown`]).
    pub owner: Option<(u32, u32)>,
    pub mtime: Timespec,
}

/// Files waiting to be created.
#[derive(Default)]
pub(super) struct Batch {
    jobs: Vec<Job>,
    bytes: usize,
}

impl Batch {
    pub fn push(&mut self, job: Job) {
        self.bytes += job.data.len();
        self.jobs.push(job);
    }

    pub fn is_full(&self) -> bool {
        self.jobs.len() >= MAX_FILES || self.bytes >= MAX_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Creates every file of the batch, recording each one's content hash in `written` when
    /// given. Returns, in layer order, the jobs whose name was already taken (nothing was done
    /// for them).
    pub fn create_all(
        &mut self,
        root: &Root,
        how: &Creation,
        written: Option<&WrittenContents>,
    ) -> Result<Vec<Job>, FsError> {
        let jobs = std::mem::take(&mut self.jobs);
        self.bytes = 0;
        let threads = crate::fs::cores().clamp(1, 4);
        if jobs.len() < PARALLEL_FROM || threads == 1 {
            let mut taken = Vec::new();
            for job in jobs {
                if !create(root, &job, how, written)? {
                    taken.push(job);
                }
            }
            return Ok(taken);
        }
        // Files of one directory stay on one thread, in order; directories are shared out.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for (i, job) in jobs.iter().enumerate() {
            let g = *group_of.entry(job.dir_path.as_str()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let next = AtomicUsize::new(0);
        let taken_idx: Mutex<Vec<usize>> = Mutex::new(Vec::new());
        let first_err: Mutex<Option<(usize, FsError)>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..threads.min(groups.len()) {
                s.spawn(|| {
                    loop {
                        let g = next.fetch_add(1, Ordering::Relaxed);
                        let Some(group) = groups.get(g) else { break };
                        for &i in group {
                            match create(root, &jobs[i], how, written) {
                                Ok(true) => {}
                                Ok(false) => taken_idx.lock().expect("not poisoned").push(i),
                                Err(e) => {
                                    let mut slot = first_err.lock().expect("not poisoned");
                                    // Report the earliest failing entry, as a sequential unpack would.
                                    if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                                        *slot = Some((i, e));
                                    }
                                    // The rest of this directory's files are not tried.
                                    break;
                                }
                            }
                        }
                        if first_err.lock().expect("not poisoned").is_some() {
                            break;
                        }
                    }
                });
            }
        });
        if let Some((_, e)) = first_err.into_inner().expect("not poisoned") {
            return Err(e);
        }
        let mut taken_idx = taken_idx.into_inner().expect("not poisoned");
        taken_idx.sort_unstable();
        let mut jobs: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
        Ok(taken_idx.into_iter().filter_map(|i| jobs[i].take()).collect())
    }
}

/// What creating a file gives it by itself: who owns it and which permission bits survive, so
/// that only the calls that change something are made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Creation {
    /// The effective uid and gid of the process: a new file's owner (its group, unless its
    /// directory is setgid).
    pub uid: u32,
    pub gid: u32,
    /// The process's umask, read from `/proc/self/status` when the unpack starts; `None` when
    /// it cannot be read, and then every file is chmodded.
    pub umask: Option<u32>,
}

impl Creation {
    /// The process as it is now.
    pub fn of_process() -> Creation {
        let umask = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            let v = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            u32::from_str_radix(v.trim(), 8).ok()
        });
        let (uid, gid) = crate::sandbox::userns::effective_ids();
        Creation { uid, gid, umask }
    }

    /// The owner to set on a new file in a directory (setgid or not) when owners are preserved,
    /// `None` when creating it already gives that owner.
    pub fn chown(&self, wanted: (u32, u32), dir_setgid: bool) -> Option<(u32, u32)> {
        (dir_setgid || wanted != (self.uid, self.gid)).then_some(wanted)
    }

    /// The permission bits to create a file with: `mode`'s, or only its owner's when the file
    /// is chowned afterwards, so that nobody but the unpacker's own user gets more access to
    /// it meanwhile than its final owner and mode give.
    pub fn bits(&self, mode: u32, chowned: bool) -> u32 {
        if chowned { mode & 0o700 } else { mode & 0o777 }
    }

    /// Whether a file created with [`Creation::bits`] must still be chmodded to `mode`: the
    /// umask took some bits, some were held back, or `mode` has setuid, setgid or sticky bits
    /// (never given at creation: they go on after the owner, whose change would clear them).
    fn chmod(&self, mode: u32, chowned: bool) -> bool {
        let bits = self.bits(mode, chowned);
        mode & 0o7777 != bits || self.umask.is_none_or(|u| bits & u != 0)
    }
}

/// Creates one file with its content and metadata; `false` when the name is taken.
fn create(root: &Root, job: &Job, how: &Creation, written: Option<&WrittenContents>) -> Result<bool, FsError> {
    let bits = how.bits(job.mode, job.owner.is_some());
    let Some(f) = root.create_new_at(&job.dir, &job.name, &job.target, bits)? else {
        return Ok(false);
    };
    finish(root, f, job, how, written)?;
    Ok(true)
}

/// Writes a job's content and metadata into its newly created file, and records its content
/// hash in `written` when given (on the thread that created it: batches run on every core).
pub(super) fn finish(
    root: &Root,
    mut f: std::fs::File,
    job: &Job,
    how: &Creation,
    written: Option<&WrittenContents>,
) -> Result<(), FsError> {
    f.write_all(&job.data).map_err(|e| root.io_err("write", &job.target, e))?;
    set_file_meta(root, &f, &job.target, job.owner, job.mode, job.mtime, how)?;
    if let Some(w) = written {
        w.record(&f, ContentHasher::of(&job.data));
    }
    Ok(())
}

/// Owner, mode and times of a regular file just created (with [`Creation::bits`]) and
/// written, through its descriptor: the chown first, because it clears setuid/setgid. `owner`
/// is `None` when the file already has the owner it should have.
pub(super) fn set_file_meta(
    root: &Root,
    f: &std::fs::File,
    target: &str,
    owner: Option<(u32, u32)>,
    mode: u32,
    mtime: Timespec,
    how: &Creation,
) -> Result<(), FsError> {
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(f, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| root.io_err("chown", target, e))?;
    }
    if how.chmod(mode, owner.is_some()) {
        rustix::fs::fchmod(f, Mode::from_raw_mode(mode)).map_err(|e| root.io_err("chmod", target, e))?;
    }
    let t = mtime.to_rustix();
    rustix::fs::futimens(f.as_fd(), &rustix::fs::Timestamps { last_access: t, last_modification: t })
        .map_err(|e| root.io_err("set times of", target, e))?;
    Ok(())
}
