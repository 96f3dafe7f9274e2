//! Container isolation in the engine: the build root is `/` of the disposable container trowel
//! runs in (kaniko's model, for pods that may not mount, chroot or unshare).
//!
//! - Paths that are not the image's are never snapshotted, unpacked over or removed: `/proc`,
//!   `/sys`, `/dev`, `/var/run/secrets`, trowel's own directory (`/trowel`, where its binary,
//!   credentials and work directory live), the cache directory, every mount point of the
//!   container (the runtime's `/etc/hosts`, the project checkout, the `/cache` volume…),
//!   kaniko's `/kaniko` when there is one (a kaniko job's credentials and CAs), and
//!   `--ignore-path`.
//! - Before a stage's base is unpacked into `/`, `/` is emptied (but for those paths); one
//!   stage owns `/` at a time. Other stages' files, when `COPY --from` needs them, are unpacked
//!   into the work directory instead, and so is the root of a stage that runs nothing
//!   (`stage/files.rs`), which leaves `/` to the stage before.
//! - It refuses to run outside a container unless `--force`: it would overwrite the host.

use std::path::{Path, PathBuf};

use crate::engine::error::BuildError;
use crate::engine::options::BuildOptions;
use crate::fs::IgnoreList;
use crate::sandbox::detect;

/// The paths of `/` that are not the image's: what container isolation keeps through
/// cleaning, unpacking and snapshots. Refuses to run outside a container unless `--force`.
pub(crate) fn slash_keep(opts: &BuildOptions, work_dir: &Path) -> Result<IgnoreList, BuildError> {
    match detect::container_evidence() {
        Some(_) => {}
        None if opts.run.force => {}
        None => {
            return Err(BuildError::Options(
                "--isolation=container builds in / and would overwrite this machine's files: it is meant for \
                 a disposable container, and trowel sees no sign of one (no container= or \
                 KUBERNETES_SERVICE_HOST variable, no /run/.containerenv, no container cgroup). \
                 Use --isolation=chroot, or --force if this really is a throwaway container"
                    .into(),
            ));
        }
    }
    let mut ignore = IgnoreList::new(["/proc", "/sys", "/dev", "/var/run/secrets"]);
    for p in detect::mount_points() {
        ignore.add(&p);
    }
    let mut own: Vec<PathBuf> = vec![opts.run.trowel_dir.clone(), work_dir.to_path_buf()];
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        own.push(dir.to_path_buf());
    }
    if let Some(c) = opts.cache.as_ref().and_then(|c| c.dir.clone()) {
        own.push(c);
    }
    // A fetched build context (`tar://`, `git://`) lives beside the build's work dir, which
    // `--work-dir` may put outside trowel's own directory.
    if let Some(c) = &opts.remote_context {
        own.push(c.work_dir().to_path_buf());
    }
    // Where cache mounts persist (on the /cache volume in a pod, usually a mount point anyway).
    if let Some(c) = opts.run.mounts.cache_dir.clone() {
        own.push(c);
    }
    // kaniko's directory, when the container has one (trowel's image does, and a job written for
    // kaniko makes it): such a job writes `/kaniko/.docker/config.json` and appends its CA to
    // `/kaniko/ssl/certs/` before the build, and kaniko never snapshots or removes the
    // directory. Kept, those credentials never reach a layer, and a registry first reached
    // after a stage emptied `/` still finds its CA.
    if Path::new("/kaniko").is_dir() {
        own.push(PathBuf::from("/kaniko"));
    }
    for p in own {
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        if p == Path::new("/") {
            return Err(BuildError::Options(format!(
                "container isolation cannot keep {} out of the image: it is /",
                p.display()
            )));
        }
        ignore.add(&p.to_string_lossy());
    }
    for p in &opts.layers.ignore_paths {
        ignore.add(p);
    }
    if opts.layers.ignore_var_run {
        ignore.add("/var/run");
    }
    Ok(ignore)
}

/// Whether the process may create device nodes (CAP_MKNOD in its effective set).
pub(crate) fn can_mknod() -> bool {
    effective_caps() & (1 << 27) != 0
}

/// Whether the process may make a network namespace (CAP_SYS_ADMIN), for `RUN --network=none`.
pub(crate) fn can_unshare_net() -> bool {
    effective_caps() & (1 << 21) != 0
}

fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}
