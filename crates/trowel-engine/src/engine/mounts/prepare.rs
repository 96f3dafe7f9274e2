//! Making a step's resolved mounts real: host paths, files and sockets the sandbox mounts (or,
//! in container isolation, puts in place), and everything that must live as long as the step —
//! cache locks, scratch copies, overlays' upper directories, ssh relays — in a [`Prepared`]
//! that takes it all away when it is dropped.
//!
//! Per type:
//! - bind: the source inside its root (the context, another stage's root, an image's),
//!   symlinks followed inside that root. From the context, `.dockerignore` applies as it does to
//!   COPY (BuildKit only ever sees the filtered context): when it has patterns, the mount shows a
//!   filtered copy, made once per build. `rw` gets an overlay whose upper directory is thrown
//!   away (a copy where overlays cannot be had, and always for a single file).
//! - cache: a directory of the [`CacheStore`](super::cache_store::CacheStore), locked as its
//!   `sharing` says, seeded on first use from `from`/`source` or made with `mode`/`uid`/`gid`.
//! - tmpfs: nothing to prepare.
//! - secret: the value given with `--secret` (a file only the sandbox's memory holds, and/or an
//!   environment variable); missing, it is an error if `required`, else the mount is left out.
//! - ssh: a relay socket to the agent given with `--ssh` (see `ssh.rs`), `SSH_AUTH_SOCK`
//!   pointing at the first one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use trowel_events::StepId;

use crate::engine::context::BuildContext;
use crate::engine::copy_source::Need;
use crate::engine::error::{BuildError, StepError};
use crate::engine::mounts::cache_store::{CacheStore, Lease, empty_dir};
use crate::engine::mounts::ssh::{KeyAgent, Proxy};
use crate::engine::mounts::{From, SshAgent, SshSource, StepMounts, What};
use crate::engine::stages::Stages;
use crate::engine::steps::copy::filter;
use crate::fs::cancel::is_cancelled;
use crate::fs::copy::{CopyOptions, copy_as_cancellable, copy_tree};
use crate::fs::root::Root;
use crate::sandbox::{HostUse, Isolation, Mount, MountSource};

/// What mounts need from the whole build: the cache store, memos, and the agents started for
/// key files. One per build, on the [`BuildContext`].
pub(crate) struct MountService {
    /// Where cache mounts persist (in the work dir, gone with the build, when the options name
    /// no directory).
    pub store: CacheStore,
    /// Filtered copies of context paths (`.dockerignore` applied), by path.
    context_copies: Mutex<HashMap<String, PathBuf>>,
    overlay_works: OnceLock<bool>,
    key_agents: Mutex<HashMap<String, KeyAgent>>,
    /// Known-hosts files made for ssh git sources, by host (`[host]:port`): each host's keys are
    /// looked up (or scanned, and said in a warning) once per build.
    ssh_hosts: Mutex<HashMap<String, PathBuf>>,
}

impl MountService {
    pub fn new(cache_dir: Option<&Path>, work: &Path) -> MountService {
        let dir = cache_dir.map(Path::to_path_buf).unwrap_or_else(|| work.join("mount-cache"));
        MountService {
            store: CacheStore::new(dir),
            context_copies: Mutex::new(HashMap::new()),
            overlay_works: OnceLock::new(),
            key_agents: Mutex::new(HashMap::new()),
            ssh_hosts: Mutex::new(HashMap::new()),
        }
    }
}

impl MountService {
    /// The socket of the agent `agent` (`--ssh ID=…`): its own, or that of an `ssh-agent`
    /// trowel starts for its key files, once per build (RUN's ssh mounts and ADD of an ssh
    /// git source share it).
    pub fn agent_socket(&self, ctx: &BuildContext<'_>, agent: &SshAgent) -> Result<PathBuf, StepError> {
        let id = &agent.id;
        match &agent.source {
            SshSource::Socket(s) => Ok(s.clone()),
            SshSource::Keys(keys) => {
                let mut agents = self.key_agents.lock().unwrap_or_else(|e| e.into_inner());
                if !agents.contains_key(id) {
                    let dir = ctx.scratch_dir("ssh-agent").map_err(|e| StepError::Build(Box::new(e)))?;
                    let a = KeyAgent::start(&dir.join("agent"), keys)
                        .map_err(|e| StepError::Invalid(format!("--ssh {id}: {e}")))?;
                    agents.insert(id.clone(), a);
                }
                Ok(agents[id].socket.clone())
            }
        }
    }

    /// The known-hosts file for the ssh host `name`, made with `make` the first time it is asked
    /// for in this build.
    pub fn ssh_known_hosts<E>(&self, name: &str, make: impl FnOnce() -> Result<PathBuf, E>) -> Result<PathBuf, E> {
        let mut hosts = self.ssh_hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = hosts.get(name) {
            return Ok(p.clone());
        }
        let p = make()?;
        hosts.insert(name.to_string(), p.clone());
        Ok(p)
    }
}

/// The host directories of the stages and images a step's mounts read, with what identifies
/// their content (for cache bases).
#[derive(Default)]
pub(crate) struct MountRoots {
    roots: Vec<(From, PathBuf, String)>,
}

impl MountRoots {
    /// Makes the roots of every stage and image `mounts` (of `step`) read available (unpacking
    /// them if needed: they stay for later steps of the build).
    pub fn gather(
        ctx: &BuildContext<'_>,
        stages: &mut Stages,
        mounts: &StepMounts,
        step: StepId,
    ) -> Result<MountRoots, BuildError> {
        let mut out = MountRoots::default();
        for m in &mounts.mounts {
            let from = match &m.what {
                What::Bind { from, .. } | What::Cache { from: Some(from), .. } => from,
                _ => continue,
            };
            if *from == From::Context || out.roots.iter().any(|(f, _, _)| f == from) {
                continue;
            }
            // Every mount of this step from the same stage or image reads from one root.
            let sources: Vec<String> = mounts
                .mounts
                .iter()
                .filter_map(|m| match &m.what {
                    What::Bind { from: f, source, .. } | What::Cache { from: Some(f), source, .. } if f == from => {
                        Some(source.clone())
                    }
                    _ => None,
                })
                .collect();
            let need = Need::Paths(sources);
            let (dir, identity) = match from {
                From::Stage(p) => {
                    let id = stages.get(*p).map(|s| {
                        // A COPY of it that was not run has no layer: its key stands for it.
                        let deferred = s.deferred.iter().map(|d| format!("deferred {}", d.key));
                        let ids: Vec<String> = s.layers.iter().map(|l| l.diff_id.to_string()).chain(deferred).collect();
                        crate::digest::Digest::of(ids.join(",").as_bytes()).to_string()
                    });
                    let root = stages.stage_files(ctx, *p, &need, step)?;
                    (root.host_path().to_path_buf(), format!("stage {p} {}", id.unwrap_or_default()))
                }
                From::Image(r) => {
                    let digest = ctx.resolve_once(r, mounts.platform.as_ref())?.manifest_digest.to_string();
                    let root = stages.image_files(ctx, r, mounts.platform.as_ref(), &need, step)?;
                    (root.host_path().to_path_buf(), format!("image {r}@{digest}"))
                }
                From::Context => unreachable!("skipped above"),
            };
            out.roots.push((from.clone(), dir, identity));
        }
        Ok(out)
    }

    fn get(&self, f: &From) -> Option<(&Path, &str)> {
        self.roots.iter().find(|(x, _, _)| x == f).map(|(_, p, i)| (p.as_path(), i.as_str()))
    }
}

/// A step's mounts, ready for the sandbox; dropping it releases and removes what it holds.
pub(crate) struct Prepared {
    pub mounts: Vec<Mount>,
    /// Variables the mounts add to the command's environment (`env=` secrets, `SSH_AUTH_SOCK`).
    pub env: Vec<(String, String)>,
    /// Where the first ssh agent is, for `SSH_AUTH_SOCK`.
    pub ssh_auth_sock: Option<String>,
    /// What the log should say (a cache waited for, a secret not given).
    pub notes: Vec<String>,
    _leases: Vec<Lease>,
    _proxies: Vec<Proxy>,
    scratch: Option<PathBuf>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // Relays and locks go first, then their scratch directory.
        self._proxies.clear();
        if let Some(s) = self.scratch.take() {
            let _ = crate::fs::remove::remove_tree(&s);
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
    let what = what.into();
    move |source| StepError::Io { what, source }
}

/// [`io`] for a copy a stop gives up ([`copy_as_cancellable`]): given up, it is the stop,
/// carried as [`StepError::Build`] so that the step hands it on as the build's abort.
fn io_or_stop<'c>(ctx: &'c BuildContext<'_>, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError + 'c {
    let what = what.into();
    move |source| match ctx.aborted().filter(|_| is_cancelled(&source)) {
        Some(stopped) => StepError::Build(Box::new(stopped)),
        None => StepError::Io { what, source },
    }
}

/// Prepares `mounts` for a run in `isolation`; `roots` must hold every stage and image they
/// read ([`MountRoots::gather`]).
pub(crate) fn prepare(
    ctx: &BuildContext<'_>,
    roots: &MountRoots,
    mounts: &StepMounts,
    isolation: Isolation,
) -> Result<Prepared, StepError> {
    let mut p = Prepared {
        mounts: Vec::new(),
        env: Vec::new(),
        ssh_auth_sock: None,
        notes: Vec::new(),
        _leases: Vec::new(),
        _proxies: Vec::new(),
        scratch: None,
    };
    if mounts.mounts.is_empty() {
        return Ok(p);
    }
    let scratch = ctx.scratch_dir("mounts").map_err(|e| StepError::Build(Box::new(e)))?;
    p.scratch = Some(scratch.clone());
    let svc = &ctx.mounts;
    for (n, m) in mounts.mounts.iter().enumerate() {
        let target = m.target.clone();
        match &m.what {
            What::Bind { from, source, rw } => {
                let host = source_path(ctx, roots, from, source)?;
                let t = target.clone().unwrap_or_default();
                let source = match (isolation, rw) {
                    (Isolation::Container, _) | (Isolation::Chroot | Isolation::Rootless, false) => {
                        MountSource::Host { path: host, usage: HostUse::Discard }
                    }
                    (Isolation::Chroot | Isolation::Rootless, true) => {
                        writable_view(ctx, &host, &scratch.join(format!("rw-{n}")))?
                    }
                };
                p.mounts.push(Mount { target: t, source, readonly: !rw });
            }
            What::Cache { id, sharing, from, source, readonly } => {
                let (mode, uid, gid) = (m.spec.mode.unwrap_or(0o755), m.spec.uid.unwrap_or(0), m.spec.gid.unwrap_or(0));
                let has_info = m.spec.mode.is_some() || m.spec.uid.is_some() || m.spec.gid.is_some();
                let seed_from = match from {
                    Some(f) if source != "/" || !has_info => {
                        Some((source_path(ctx, roots, f, source)?, identity(roots, f)))
                    }
                    _ => None,
                };
                let base_key = match &seed_from {
                    Some((_, ident)) => format!("from {ident} {source}"),
                    None if has_info => format!("mkdir {mode:o} {uid} {gid}"),
                    None => String::new(),
                };
                // A stage's big tree seeds a cache as long as it takes to copy: a stop gives
                // the copy up (the cache store removes what it made) and is the abort.
                let cancel = ctx.fs_cancel();
                let seed = |dir: &Path| -> std::io::Result<()> {
                    match &seed_from {
                        Some((src, _)) => copy_as_cancellable(src, dir, cancel.as_ref()).map(drop),
                        None => empty_dir(dir, mode, uid, gid),
                    }
                };
                std::fs::create_dir_all(svc.store.dir())
                    .map_err(io(format!("create {}", svc.store.dir().display())))?;
                let lease = svc
                    .store
                    .acquire(id, &base_key, *sharing, &seed, &mut || {
                        let why = format!(
                            "cache mount {id}: waiting for another build using it (sharing={})",
                            sharing.as_str()
                        );
                        ctx.emitter.warn(why);
                    })
                    .map_err(io_or_stop(ctx, format!("cache mount {id} in {}", svc.store.dir().display())))?;
                if let Some(w) = lease.waited {
                    p.notes.push(format!("cache mount {id}: waited {:.1}s for another build", w.as_secs_f64()));
                }
                if lease.instance > 0 {
                    p.notes
                        .push(format!("cache mount {id}: in use elsewhere, private instance {} used", lease.instance));
                }
                let t = target.clone().unwrap_or_default();
                p.mounts.push(Mount {
                    target: t,
                    source: MountSource::Host { path: lease.path.clone(), usage: HostUse::Persist },
                    readonly: *readonly,
                });
                p._leases.push(lease);
            }
            What::Tmpfs { size } => {
                p.mounts.push(Mount {
                    target: target.unwrap_or_default(),
                    source: MountSource::Tmpfs { size: *size },
                    readonly: m.spec.read_only,
                });
            }
            What::Secret { id, env, mode, uid, gid, required } => {
                let Some(secret) = ctx.opts.run.mounts.secret(id) else {
                    if *required {
                        return Err(StepError::Invalid(missing_secret(id)));
                    }
                    p.notes.push(format!("secret {id} was not given (--secret id={id},…): not mounted"));
                    // BuildKit still sets an optional secret's variable, empty (`loadSecretEnv`),
                    // so `set -u` scripts and `${VAR-default}` see what they see there.
                    if let Some(var) = env {
                        p.env.push((var.clone(), String::new()));
                    }
                    continue;
                };
                if let Some(var) = env {
                    let value = String::from_utf8(secret.value.0.clone()).map_err(|_| {
                        StepError::Invalid(format!(
                            "secret {id} is not UTF-8 text: it cannot be the environment variable {var}"
                        ))
                    })?;
                    if value.contains('\0') {
                        return Err(StepError::Invalid(format!(
                            "secret {id} holds a NUL byte: it cannot be the environment variable {var}"
                        )));
                    }
                    p.env.push((var.clone(), value));
                }
                if let Some(t) = target {
                    let source = MountSource::File { content: secret.value.clone(), mode: *mode, uid: *uid, gid: *gid };
                    p.mounts.push(Mount { target: t, source, readonly: true });
                }
            }
            What::Ssh { id, mode, uid, gid, required } => {
                // BuildKit points SSH_AUTH_SOCK at the first ssh mount's target (unless ENV set
                // it), whether its agent was given or not (`client/llb/exec.go`).
                if p.ssh_auth_sock.is_none() {
                    p.ssh_auth_sock = Some(target.clone().unwrap_or_default());
                }
                let Some(agent) = ctx.opts.run.mounts.ssh_agent(id) else {
                    if *required {
                        return Err(StepError::Invalid(missing_ssh(id)));
                    }
                    p.notes.push(format!("ssh agent {id} was not given (--ssh {id}=…): not mounted"));
                    continue;
                };
                let upstream = svc.agent_socket(ctx, agent)?;
                let dir = scratch.join(format!("ssh-{n}"));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                let proxy = Proxy::start(&upstream, &dir.join("agent.sock"), *uid, *gid, *mode)
                    .map_err(io(format!("forward ssh agent {id} from {}", upstream.display())))?;
                let t = target.clone().unwrap_or_default();
                p.mounts.push(Mount {
                    target: t,
                    source: MountSource::Host { path: proxy.path.clone(), usage: HostUse::Consume },
                    readonly: false,
                });
                p._proxies.push(proxy);
            }
        }
    }
    // Two mounts at one target: the step sees the later one, as in BuildKit, whose front end
    // refuses nothing here and whose executor keeps the last mount of each destination
    // (`executor/oci/mounts.go`, `dedupMounts`). Both were prepared, as there.
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Mount> = p.mounts.drain(..).rev().filter(|m| seen.insert(m.target.clone())).collect();
    kept.reverse();
    p.mounts = kept;
    Ok(p)
}

pub(crate) fn missing_secret(id: &str) -> String {
    format!(
        "secret {id} is required but was not given (pass it with --secret id={id},src=FILE or --secret id={id},env=VARIABLE)"
    )
}

pub(crate) fn missing_ssh(id: &str) -> String {
    format!(
        "ssh agent {id} is required but was not given (pass it with --ssh {id} for $SSH_AUTH_SOCK, or --ssh {id}=SOCKET|KEYFILE)"
    )
}

fn identity(roots: &MountRoots, f: &From) -> String {
    match f {
        From::Context => "context".into(),
        other => roots.get(other).map(|(_, i)| i.to_string()).unwrap_or_default(),
    }
}

/// The host path of `source` inside `from`'s root, symlinks followed inside that root.
fn source_path(ctx: &BuildContext<'_>, roots: &MountRoots, from: &From, source: &str) -> Result<PathBuf, StepError> {
    let described = |f: &From| match f {
        From::Context => "the build context".to_string(),
        From::Stage(i) => format!("stage {}", ctx.stage_label(*i)),
        From::Image(r) => format!("image {r}"),
    };
    let root_dir = match from {
        From::Context => context_view(ctx, source)?,
        other => roots
            .get(other)
            .map(|(p, _)| p.to_path_buf())
            .ok_or_else(|| StepError::Invalid(format!("{} is not available", described(other))))?,
    };
    let root_dir = std::fs::canonicalize(&root_dir).map_err(io(format!("resolve {}", root_dir.display())))?;
    let root =
        Root::open(&root_dir).map_err(|e| StepError::Fs { what: format!("open {}", described(from)), source: e })?;
    let resolved = root
        .resolve(source)
        .map_err(|e| StepError::Fs { what: format!("resolve {source} in {}", described(from)), source: e })?;
    let present = root
        .lstat(&resolved)
        .map_err(|e| StepError::Fs { what: format!("look up {source} in {}", described(from)), source: e })?;
    if present.is_none() {
        return Err(StepError::Invalid(format!("mount source {source} not found in {}", described(from))));
    }
    Ok(root_dir.join(resolved.trim_start_matches('/')))
}

/// The context as a mount from it sees it: the context itself without `.dockerignore`, else a
/// filtered copy of `source` (the same files COPY would take), made once per build.
fn context_view(ctx: &BuildContext<'_>, source: &str) -> Result<PathBuf, StepError> {
    if ctx.dockerignore.is_empty() {
        return Ok(ctx.context.host_path().to_path_buf());
    }
    let mut copies = ctx.mounts.context_copies.lock().unwrap_or_else(|e| e.into_inner());
    let key = crate::engine::steps::join_clean("/", source);
    if let Some(dir) = copies.get(&key) {
        return Ok(dir.clone());
    }
    let dir = ctx.scratch_dir("context-view").map_err(|e| StepError::Build(Box::new(e)))?.join("root");
    std::fs::create_dir(&dir).map_err(io(format!("create {}", dir.display())))?;
    let dst = Root::open(&dir).map_err(|e| StepError::Fs { what: "open a context copy".into(), source: e })?;
    let rel = key.trim_start_matches('/').to_string();
    if ctx
        .context
        .lstat(&key)
        .map_err(|e| StepError::Fs { what: format!("look up {key} in the build context"), source: e })?
        .is_some()
    {
        let f = filter::for_dir(&rel, None, Some(&ctx.dockerignore));
        // A big context takes as long to copy as a COPY of it: a stop gives the copy up (the
        // part made goes with the build's scratch dir; nothing is memoized) and is the abort.
        let cancel = ctx.fs_cancel();
        let opts = CopyOptions {
            owner: None,
            chmod: None,
            preserve_times: true,
            filter: &f,
            overwrite_dirs: false,
            watch: None,
            cancel: cancel.as_ref(),
        };
        copy_tree(&ctx.context, &key, &dst, &key, &opts)
            .map_err(ctx.step_fs_failed(format!("copy {key} of the build context for a mount")))?;
    }
    copies.insert(key, dir.clone());
    Ok(dir)
}

/// A writable view of `host` whose writes are thrown away with `scratch`: an overlay when the
/// kernel allows one there, else a copy.
fn writable_view(ctx: &BuildContext<'_>, host: &Path, scratch: &Path) -> Result<MountSource, StepError> {
    std::fs::create_dir_all(scratch).map_err(io(format!("create {}", scratch.display())))?;
    let overlay_ok = host.is_dir()
        && !host.to_string_lossy().contains([',', ':', '\\'])
        && *ctx.mounts.overlay_works.get_or_init(|| overlay_probe(scratch));
    if overlay_ok {
        let (upper, work) = (scratch.join("upper"), scratch.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir(d).map_err(io(format!("create {}", d.display())))?;
        }
        return Ok(MountSource::Overlay { lower: host.to_path_buf(), upper, work });
    }
    let name = host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into());
    let copy = scratch.join(name);
    // Made where no overlay can be had: as long as a copy of the context, and given up as it is.
    let cancel = ctx.fs_cancel();
    copy_as_cancellable(host, &copy, cancel.as_ref())
        .map(drop)
        .map_err(io_or_stop(ctx, format!("copy {} for a writable mount", host.display())))?;
    Ok(MountSource::Host { path: copy, usage: HostUse::Consume })
}

/// Whether an overlay can be mounted with its upper directory in `dir`'s filesystem.
fn overlay_probe(dir: &Path) -> bool {
    let probe = dir.join(".overlay-probe");
    let lower = probe.join("lower");
    let ok = std::fs::create_dir_all(&lower).is_ok()
        && crate::fs::overlay::Overlay::mount(&lower, &probe).and_then(|mut o| o.unmount()).is_ok();
    let _ = std::fs::remove_dir_all(&probe);
    ok
}
