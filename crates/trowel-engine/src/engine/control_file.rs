//! Reading the files that steer a build from its context: the Dockerfile and the ignore file.
//!
//! trowel reads these itself, outside any sandbox, and a remote context (an archive, a
//! repository, an object in a bucket) is someone else's content. A `Dockerfile` there that is a
//! symbolic link to `/root/.docker/config.json` would have the host's file parsed and its first
//! line quoted in the parse error (in the log and the trace); an ignore file linked to
//! `/dev/zero` would be read until memory ran out. So inside a remote context these files are
//! opened with in-root resolution (a link is followed as BuildKit follows links in a context:
//! inside it, `/` its top) and must be regular files. A local context is the user's own
//! directory, where a link to a shared Dockerfile elsewhere is a fair thing to have: its links
//! are followed as the shell would, but a device or a FIFO is refused there too. Either way a
//! control file is bounded ([`MAX_BYTES`]).

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::fs::{FsError, Root};

/// The most a Dockerfile or an ignore file may hold. The largest real ones are tens of
/// kilobytes; this only stops a file that is not one.
pub(crate) const MAX_BYTES: u64 = 16 << 20;

/// The contents of `path`; `Ok(None)` when it does not exist. `remote_root`: the directory of a
/// remote context, inside which `path` is resolved when it lies below it (a `--dockerfile`
/// given from the working directory is the user's own and read as given).
pub(crate) fn read(path: &Path, remote_root: Option<&Path>) -> io::Result<Option<Vec<u8>>> {
    let file = match remote_root.and_then(|root| Some((root, path.strip_prefix(root).ok()?))) {
        Some((root, rel)) => open_in_context(root, rel)?,
        None => open_local(path)?,
    };
    let Some(file) = file else { return Ok(None) };
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(io::Error::other(format!(
            "it is larger than {} MiB, which no Dockerfile or ignore file is",
            MAX_BYTES >> 20
        )));
    }
    Ok(Some(bytes))
}

fn open_in_context(root: &Path, rel: &Path) -> io::Result<Option<std::fs::File>> {
    let rel = format!("/{}", rel.to_string_lossy());
    let root = Root::open(root).map_err(io::Error::other)?;
    match root.open_file(&rel) {
        Ok(f) => Ok(Some(f)),
        Err(FsError::NotFound { .. }) => Ok(None),
        Err(e) if e.is_errno(libc::ENOENT) || e.is_errno(libc::ENOTDIR) => Ok(None),
        Err(FsError::WrongType { reason, .. }) => Err(io::Error::other(reason)),
        Err(e) => Err(io::Error::other(e)),
    }
}

fn open_local(path: &Path) -> io::Result<Option<std::fs::File>> {
    // O_NONBLOCK: a FIFO must not hang the open; it is refused below.
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_contexts_link_stays_inside_it() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        let ctx = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), ctx.path().join("Dockerfile")).unwrap();
        let df = ctx.path().join("Dockerfile");
        // Resolved inside the context, the link's target does not exist there.
        assert_eq!(read(&df, Some(ctx.path())).unwrap(), None);
        // The same link in the user's own directory is followed.
        assert_eq!(read(&df, None).unwrap().unwrap(), b"host secret");
        // A link to a path that exists inside the context reads that.
        std::fs::create_dir_all(ctx.path().join(outside.path().strip_prefix("/").unwrap())).unwrap();
        std::fs::write(ctx.path().join(outside.path().strip_prefix("/").unwrap()).join("secret"), "FROM x").unwrap();
        assert_eq!(read(&df, Some(ctx.path())).unwrap().unwrap(), b"FROM x");
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        let ctx = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", ctx.path().join(".dockerignore")).unwrap();
        let ig = ctx.path().join(".dockerignore");
        let e = read(&ig, None).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // Inside a remote context the link does not even reach the device.
        assert_eq!(read(&ig, Some(ctx.path())).unwrap(), None);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            ctx.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(read(&ctx.path().join("fifo"), None).is_err());
        assert!(read(&ctx.path().join("fifo"), Some(ctx.path())).is_err());
    }

    #[test]
    fn a_file_past_the_bound_is_refused() {
        let ctx = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(ctx.path().join("Dockerfile")).unwrap();
        f.set_len(MAX_BYTES + 1).unwrap();
        let e = read(&ctx.path().join("Dockerfile"), None).unwrap_err();
        assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
    }
}
