//! `RUN --mount`, `--network` and `--security`: what a RUN's flags ask for, resolved with
//! BuildKit's rules (moby/buildkit `frontend/dockerfile/dockerfile2llb/convert_runmount.go`,
//! `convert_secrets.go`, `convert_ssh.go`), then made real for the sandbox.
//!
//! - [`resolve`] (here) turns the expanded flags into [`StepMounts`]: targets made absolute
//!   against WORKDIR, defaults filled in (a cache's id is its target, a secret's file is
//!   `/run/secrets/<id>`, ssh sockets are `/run/buildkit/ssh_agent.<n>`), `from` named as the
//!   context, a stage or an image. Pure: the cache-key planner and the debugger use it too.
//! - `prepare.rs` makes them host paths and files the sandbox mounts (or, in container
//!   isolation, puts in place), holding what must live as long as the step: cache locks,
//!   scratch copies, an ssh agent's proxy.
//! - `cache_store.rs` keeps cache mounts between builds; `ssh.rs` forwards agents; `key.rs`
//!   says what a mount adds to the step's cache key; `options.rs` holds the build's secrets,
//!   agents and entitlements.

use crate::dockerfile::mount::{MountSpec, MountType, Sharing};
use crate::dockerfile::{Flag, Plan};
use crate::engine::steps::join_clean;
use crate::sandbox::Network;

mod cache_store;
pub(crate) mod key;
pub mod options;
mod prepare;
mod ssh;

pub use options::{MountOptions, Secret, SshAgent, SshSource};
pub(crate) use prepare::{MountRoots, MountService, Prepared, missing_secret, missing_ssh, prepare};

/// Where a bind or cache mount's `from` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum From {
    /// The build context (no `from`).
    Context,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image, by reference.
    Image(String),
}

/// A mount as the step will have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The `--mount` value as parsed (for keys and display).
    pub spec: MountSpec,
    /// Absolute and clean; `None` for a secret exposed only as an environment variable.
    pub target: Option<String>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    Bind {
        from: From,
        source: String,
        rw: bool,
    },
    /// `from`: `None` when the cache starts empty.
    Cache {
        id: String,
        sharing: Sharing,
        from: Option<From>,
        source: String,
        readonly: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
    Secret {
        id: String,
        env: Option<String>,
        mode: u32,
        uid: u32,
        gid: u32,
        required: bool,
    },
    Ssh {
        id: String,
        mode: u32,
        uid: u32,
        gid: u32,
        required: bool,
    },
}

/// Everything a RUN's flags ask of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StepMounts {
    pub mounts: Vec<Resolved>,
    pub network: Network,
    /// `--security=insecure`.
    pub insecure: bool,
    /// What an image named by `from=` is resolved for: the target platform, not the stage's
    /// (see [`Plan::source_image_platform`]).
    pub platform: Option<crate::image::manifest::Platform>,
}

/// Resolves a RUN's expanded flags in stage `stage` with working directory `workdir`.
pub(crate) fn resolve(flags: &[Flag], workdir: &str, plan: &Plan, stage: usize) -> Result<StepMounts, String> {
    let mut out = StepMounts { platform: Some(plan.source_image_platform(stage)), ..StepMounts::default() };
    let mut ssh_n = 0;
    for f in flags {
        let value = f.value.as_deref().unwrap_or("");
        match f.name.as_str() {
            "mount" => {
                let spec = MountSpec::parse(value).map_err(|e| format!("--mount={value}: {e}"))?;
                let m =
                    resolve_one(spec, workdir, plan, stage, &mut ssh_n).map_err(|e| format!("--mount={value}: {e}"))?;
                out.mounts.push(m);
            }
            "network" => {
                out.network = match value {
                    "default" | "host" => Network::Host,
                    "none" => Network::None,
                    other => return Err(format!("unsupported network mode {other:?} (one of default, none, host)")),
                }
            }
            "security" => {
                out.insecure = match value {
                    "sandbox" => false,
                    "insecure" => true,
                    other => return Err(format!("unsupported security mode {other:?} (one of sandbox, insecure)")),
                }
            }
            other => return Err(format!("unknown flag --{other} for RUN")),
        }
    }
    // Two mounts at one target are no error: the step sees the later one (`prepare.rs`).
    Ok(out)
}

fn resolve_one(
    spec: MountSpec,
    workdir: &str,
    plan: &Plan,
    stage: usize,
    ssh_n: &mut usize,
) -> Result<Resolved, String> {
    let absolute = |t: &str| {
        let t = join_clean(workdir, t);
        if t == "/" { Err(format!("invalid mount target {t:?}")) } else { Ok(t) }
    };
    let from = |name: &Option<String>| match name {
        None => From::Context,
        Some(n) => match stage_named(plan, stage, n) {
            Some(i) => From::Stage(i),
            None => From::Image(n.clone()),
        },
    };
    let source = join_clean("/", spec.source.as_deref().unwrap_or(""));
    let (target, what) = match spec.kind {
        MountType::Bind => {
            let what = What::Bind { from: from(&spec.from), source, rw: !spec.read_only };
            (Some(absolute(spec.target.as_deref().unwrap_or(""))?), what)
        }
        MountType::Cache => {
            let raw = spec.target.clone().unwrap_or_default();
            // BuildKit: the id defaults to the target as written, cleaned (not made absolute).
            let id = spec.id.clone().unwrap_or_else(|| clean_relative(&raw));
            let what = What::Cache {
                id,
                sharing: spec.sharing,
                from: spec.from.as_ref().map(|_| from(&spec.from)),
                source,
                readonly: spec.read_only,
            };
            (Some(absolute(&raw)?), what)
        }
        MountType::Tmpfs => (Some(absolute(spec.target.as_deref().unwrap_or(""))?), What::Tmpfs { size: spec.size }),
        MountType::Secret => {
            let base = |p: &str| p.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
            let id = secret_id(&spec).ok_or("one of source, target required")?;
            let target = match (&spec.target, &spec.env) {
                (Some(t), _) => Some(absolute(t)?),
                (None, None) => Some(format!("/run/secrets/{}", base(&id))),
                (None, Some(_)) => None,
            };
            let what = What::Secret {
                id,
                env: spec.env.clone(),
                mode: spec.mode.unwrap_or(0o400),
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
                required: spec.required,
            };
            (target, what)
        }
        MountType::Ssh => {
            if spec.source.is_some() {
                return Err("ssh does not support source".into());
            }
            let n = *ssh_n;
            *ssh_n += 1;
            let target = match &spec.target {
                Some(t) => absolute(t)?,
                None => format!("/run/buildkit/ssh_agent.{n}"),
            };
            let what = What::Ssh {
                id: spec.id.clone().unwrap_or_else(|| "default".into()),
                mode: spec.mode.unwrap_or(0o600),
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
                required: spec.required,
            };
            (Some(target), what)
        }
    };
    Ok(Resolved { spec, target, what })
}

/// A secret mount's id (BuildKit: `source`, else `id`, else the target's last element).
pub(crate) fn secret_id(spec: &MountSpec) -> Option<String> {
    let base = |p: &str| p.trim_end_matches('/').rsplit('/').next().unwrap_or("").to_string();
    spec.source.clone().or_else(|| spec.id.clone()).or_else(|| spec.target.as_deref().map(base))
}

/// Go's `path.Clean` of a relative or absolute path (`a//b/` → `a/b`, `` → `.`).
fn clean_relative(p: &str) -> String {
    let abs = p.starts_with('/');
    let joined = join_clean("/", p);
    if abs {
        joined
    } else {
        let rel = joined.trim_start_matches('/');
        if rel.is_empty() { ".".into() } else { rel.into() }
    }
}

/// A mount's `from`: an earlier stage by name (case-insensitive), as BuildKit finds it.
fn stage_named(plan: &Plan, current: usize, name: &str) -> Option<usize> {
    let j = plan.dockerfile_stage_named(name)?;
    (j < plan.stages[current].dockerfile_stage).then(|| plan.instance_of(j, current)).flatten()
}

#[cfg(test)]
mod tests;
