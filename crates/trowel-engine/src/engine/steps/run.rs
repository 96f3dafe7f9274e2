//! RUN: execute a command in the build root (through the sandbox) with its mounts, network and
//! security mode, stream its output as events (secrets masked even across chunk boundaries),
//! and fail the build with the command's exit code. What it changed is the whole root's
//! business: the runner snapshots it all (the mounts are gone by then).

use trowel_events::{Event, OutputStream};

use crate::dockerfile::{Flag, RunScript};
use crate::engine::error::{BuildError, StepError};
use crate::engine::mounts;
use crate::engine::stage::StageConfig;
use crate::engine::steps::config::default_shell;
use crate::engine::steps::{Changed, FileCx, FileStep, Scope, StepAt};
use crate::engine::vars::run_env;
use crate::fs::root::Root;
use crate::sandbox::{self, ResolvedUser, RunSpec, StdioMode, Stream};
use crate::secrets::Redactor;

pub(crate) struct Run {
    pub flags: Vec<Flag>,
    pub script: RunScript,
}

impl FileStep for Run {
    fn run(&self, cx: FileCx<'_, '_>) -> Result<Changed, BuildError> {
        let FileCx { ctx, at, config, root, mounts, seen, .. } = cx;
        let (mounts, roots) = mounts.ok_or_else(|| at.invalid("internal error: RUN without its mounts"))?;
        debug_assert_eq!(self.flags.iter().filter(|f| f.name == "mount").count(), mounts.mounts.len());
        let user = stage_user(config, root.root(), at)?;
        let cwd = config.image.working_dir().unwrap_or("/").to_string();
        let r = root.root();
        // The working directory of a base image may not exist yet (runc creates it too).
        r.mkdir_all(&cwd, 0o755, None)
            .map_err(|e| at.fail(StepError::fs(format!("create working directory {cwd}"))(e)))?;

        let shell = config.image.shell().unwrap_or_else(default_shell);
        let mut script_file: Option<String> = None;
        let argv = match self.script.clone() {
            RunScript::Shell(s) => [shell, vec![s]].concat(),
            RunScript::Exec(v) => v,
            RunScript::Script { content, shebang: false } => [shell, vec![content]].concat(),
            RunScript::Script { content, shebang: true } => {
                // BuildKit runs a `#!` heredoc as a file; it lives in the root only for this RUN.
                let path = format!("/.trowel-heredoc-{}-{}", at.id.stage, at.id.step);
                let mut f =
                    r.create_file(&path, 0o755).map_err(|e| at.fail(StepError::fs("write heredoc script")(e)))?;
                std::io::Write::write_all(&mut f, content.as_bytes())
                    .map_err(|e| at.invalid(format!("write heredoc script: {e}")))?;
                script_file = Some(path.clone());
                vec![path]
            }
        };
        let prepared = mounts::prepare(ctx, roots, mounts, ctx.opts.run.isolation).map_err(|e| at.fail(e))?;
        for note in &prepared.notes {
            ctx.emitter.warn(format!("{}:{}: {note}", at.loc.file, at.loc.line));
        }
        let env = with_mount_env(run_env(&config.image, &config.args, &user.home), &prepared);
        let spec = RunSpec {
            root: root.dir.clone(),
            argv,
            env,
            cwd,
            user: user.ids.clone(),
            hostname: "trowel".to_string(),
            isolation: ctx.opts.run.isolation,
            stdio: StdioMode::Piped,
            timeout: ctx.opts.run.timeout,
            helper_exe: ctx.opts.run.helper_exe.clone(),
            extra_hosts: Vec::new(),
            mounts: prepared.mounts.clone(),
            network: mounts.network,
            privileged: mounts.insecure,
            work_dir: Some(ctx.work.path().to_path_buf()),
            stop: ctx.stop.clone(),
        };
        let emitter = ctx.emitter.clone();
        // The emitter's: it holds the secrets found since the build started too.
        let redactor = ctx.emitter.redactor().merged(&ctx.redactor);
        let id = at.id;
        let mut carry: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut on_output = |stream: Stream, bytes: &[u8]| {
            let (slot, s) = match stream {
                Stream::Stdout => (0, OutputStream::Stdout),
                Stream::Stderr => (1, OutputStream::Stderr),
            };
            let buf = &mut carry[slot];
            buf.extend_from_slice(bytes);
            if let Some(data) = take_ready(buf, &redactor) {
                emitter.emit(Event::Output { id, stream: s, data });
            }
        };
        let outcome = sandbox::run(&spec, &mut on_output);
        for (slot, s) in [(0, OutputStream::Stdout), (1, OutputStream::Stderr)] {
            if !carry[slot].is_empty() {
                let data = redactor.redact(&String::from_utf8_lossy(&carry[slot]));
                ctx.emitter.emit(Event::Output { id, stream: s, data });
            }
        }
        // Locks, relays and scratch copies go as soon as the command is done.
        drop(prepared);
        if let Some(p) = script_file {
            let _ = root.root().remove_all(&p);
        }
        // An abort asked for while the command ran: whatever it printed or exited with, the
        // build stops here as aborted.
        if let Some(reason) = ctx.stop.as_ref().and_then(|s| s.is_requested().then(|| s.reason()).flatten()) {
            return Err(BuildError::Aborted(reason));
        }
        let outcome = outcome.map_err(|e| at.fail(e))?;
        if outcome.timed_out {
            let secs = ctx.opts.run.timeout.map(|d| d.as_secs()).unwrap_or(0);
            return Err(at.fail(StepError::TimedOut { secs, exit_code: outcome.exit_code }));
        }
        if outcome.exit_code != 0 {
            // The commonest reason a RUN fails only rootless: an id the namespace lacks.
            if ctx.opts.run.isolation == sandbox::Isolation::Rootless
                && sandbox::userns::current_mapping() == Some(sandbox::userns::Mapping::Single)
            {
                ctx.emitter.warn(SINGLE_ID_FAILURE.to_string());
            }
            return Err(at.fail(StepError::Exit(outcome.exit_code)));
        }
        // What the bind mounts of the context showed must be what the key was made from: the
        // context, walked again now the command is done (`copy/keyfiles.rs`).
        if let Some(seen) = seen {
            let rels: Vec<&str> = mounts
                .mounts
                .iter()
                .filter_map(|m| match &m.what {
                    mounts::What::Bind { from: mounts::From::Context, source, .. } => Some(source.as_str()),
                    _ => None,
                })
                .collect();
            crate::engine::steps::copy::keyfiles::recheck_context_tree(ctx, &rels, seen).map_err(|e| at.fail(e))?;
        }
        Ok(Changed::Files(Scope::Full))
    }
}

/// Takes the part of a stream's pending bytes that can be shown now, with secrets masked.
///
/// Secrets are masked in all the pending text *before* it is cut: the emitter masks each event
/// on its own, so a secret that began in the part shown now and ended in the part kept for later
/// would reach no sink whole (and so would reach them all unmasked). After masking, the last
/// `longest secret - 1` bytes stay pending, since they may be the start of a secret that the next
/// chunk completes, and so does an incomplete UTF-8 sequence at the very end.
pub(crate) fn take_ready(buf: &mut Vec<u8>, redactor: &Redactor) -> Option<String> {
    let valid = utf8_boundary(buf);
    if valid == 0 {
        return None;
    }
    let text = redactor.redact(&String::from_utf8_lossy(&buf[..valid]));
    let mut cut = text.len().saturating_sub(redactor.max_len().saturating_sub(1));
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rest = text.as_bytes()[cut..].to_vec();
    rest.extend_from_slice(&buf[valid..]);
    *buf = rest;
    (cut > 0).then(|| text[..cut].to_string())
}

/// The longest prefix of `buf` that does not end inside a UTF-8 sequence.
fn utf8_boundary(buf: &[u8]) -> usize {
    let n = buf.len();
    for back in 1..=3.min(n) {
        let b = buf[n - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte: keep looking for the lead byte
        }
        let need = if b >= 0xF8 {
            1 // not a lead byte of any valid sequence: nothing to wait for
        } else if b >= 0xF0 {
            4
        } else if b >= 0xE0 {
            3
        } else if b >= 0xC0 {
            2
        } else {
            1
        };
        return if need > back { n - back } else { n };
    }
    n
}

/// The command's environment with what its mounts add: `env=` secrets (replacing a variable
/// of the same name, as BuildKit does) and `SSH_AUTH_SOCK` unless ENV set one.
pub(crate) fn with_mount_env(mut env: Vec<(String, String)>, prepared: &mounts::Prepared) -> Vec<(String, String)> {
    for (k, v) in &prepared.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    if let Some(sock) = &prepared.ssh_auth_sock
        && !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK")
    {
        env.push(("SSH_AUTH_SOCK".into(), sock.clone()));
    }
    env
}

/// The stage's USER resolved against the root's /etc/passwd and /etc/group.
fn stage_user(config: &StageConfig, root: &Root, at: &StepAt<'_>) -> Result<ResolvedUser, BuildError> {
    resolve_user(root, config.image.user().unwrap_or(""), at)
}

/// Resolves `spec` (`name`, `uid`, `name:group`, …) against a root's /etc/passwd and /etc/group.
fn resolve_user(root: &Root, spec: &str, at: &StepAt<'_>) -> Result<ResolvedUser, BuildError> {
    let read = |p: &str| root.read_to_string(p).map_err(|e| at.fail(StepError::fs(format!("read {p}"))(e)));
    let (passwd, group) = (read("/etc/passwd")?, read("/etc/group")?);
    sandbox::resolve_user(spec, passwd.as_deref(), group.as_deref()).map_err(|e| at.fail(e))
}

/// Said when a RUN fails in a single-id user namespace.
const SINGLE_ID_FAILURE: &str = "this RUN ran rootless with a single id (no /etc/subuid and /etc/subgid range for \
the user): only uid and gid 0 exist, so chown to any other id, useradd's files and switching to another user fail \
with \"Invalid argument\"; if that is what failed above, give the user a range (usermod --add-subuids \
100000-165535 --add-subgids 100000-165535 <user>) — see README, \"Rootless\"";

#[cfg(test)]
mod tests {
    use super::{Redactor, take_ready, utf8_boundary};

    /// Feeds `chunks` through [`take_ready`] as the RUN output loop does, each emitted piece
    /// masked again on its own (as the emitter does); returns what the sinks would see.
    fn stream(redactor: &Redactor, chunks: &[&[u8]]) -> Vec<String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            out.extend(take_ready(&mut buf, redactor).map(|s| redactor.redact(&s)));
        }
        out.push(redactor.redact(&String::from_utf8_lossy(&buf)));
        out
    }

    #[test]
    fn secrets_split_across_chunks_or_at_the_end_are_masked() {
        let r = Redactor::new(["custom-secret-value-77".to_string(), "ghp_FAILtoken0123456789".to_string()]);
        // The case that leaked: the shown part ended inside a secret that the kept part finished.
        let seen = stream(&r, &[b"t=ghp_FAILtoken0123456789 c=custom-secret-value-77\n"]);
        assert!(seen.iter().all(|s| !s.contains("custom") || s.contains("***")), "{seen:?}");
        assert_eq!(seen.concat(), "t=*** c=***\n");
        // Split at every position of a two-chunk stream.
        let text = b"head ghp_FAILtoken0123456789 mid custom-secret-value-77 tail\n";
        for cut in 0..text.len() {
            let seen = stream(&r, &[&text[..cut], &text[cut..]]);
            let all = seen.concat();
            assert_eq!(all, "head *** mid *** tail\n", "cut at {cut}: {seen:?}");
            for piece in &seen {
                for secret in ["ghp_", "custom-s"] {
                    assert!(!piece.contains(secret), "cut at {cut}: {piece:?}");
                }
            }
        }
        // Without secrets everything complete is shown at once.
        let mut buf = b"abc\xe2\x82".to_vec();
        assert_eq!(take_ready(&mut buf, &Redactor::default()).as_deref(), Some("abc"));
        assert_eq!(buf, b"\xe2\x82");
    }

    #[test]
    fn holds_back_split_sequences() {
        let s = "añ€😀".as_bytes();
        for cut in 0..=s.len() {
            let b = utf8_boundary(&s[..cut]);
            assert!(std::str::from_utf8(&s[..b]).is_ok(), "cut {cut} -> {b}");
            assert!(cut - b < 4);
        }
        assert_eq!(utf8_boundary(s), s.len());
        assert_eq!(utf8_boundary(b"\xff\xfe"), 2, "invalid bytes are passed on, not held forever");
    }
}
