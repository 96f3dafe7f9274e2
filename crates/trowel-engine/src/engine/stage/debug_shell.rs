//! Debugger shell sessions at a pause: a shell (or a command) inside the build root, as the
//! step runs (environment, user, working directory, isolation, and a RUN's mounts, network and
//! security mode), on an overlay so that what it
//! changes can be kept as a layer or discarded with the root left exactly as it was.

use std::path::{Path, PathBuf};

use trowel_events::{Event, OutputStream};

use crate::engine::controller::{Checkpoint, ShellChoice};
use crate::engine::error::BuildError;
use crate::engine::mounts::{self, MountRoots, Prepared, StepMounts};
use crate::engine::report;
use crate::engine::shared::Shared;
use crate::engine::stage::StageRunner;
use crate::engine::steps::{take_ready, with_mount_env};
use crate::engine::vars::run_env;
use crate::fs::Root;
use crate::fs::overlay::{self, Overlay};
use crate::sandbox::{self, RunSpec, StdioMode, Stream};

/// A shell session that could not be had (the build goes on; the front end is told).
type SessionError = String;

impl StageRunner {
    /// Opens a shell (or runs `argv`) in the stage's root at a pause, then asks the controller
    /// whether to keep what it changed.
    pub(crate) fn shell_session(
        &mut self,
        s: &mut Shared<'_, '_>,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
    ) -> Result<(), SessionError> {
        // In container isolation a shell runs in `/`, where the stage's root must be then.
        let root = match s.ctx.slash_keep {
            Some(_) => self.files.at_slash(s, self.index, &self.layers),
            None => self.files.get(s, self.index, &self.layers),
        };
        let root_dir = root.map_err(|e| e.to_string())?.dir.clone();
        // At a RUN's pause the shell has the RUN's mounts, network and security mode.
        let mounts = self.shell_mounts(s, at)?;
        if s.ctx.slash_keep.is_some() {
            return self.session_in_container(s, at, argv, mounts.as_ref());
        }
        let scratch = s.ctx.scratch_dir("shell").map_err(|e| e.to_string())?;
        let result = self.session_on_overlay(s, at, argv, &root_dir, &scratch, mounts.as_ref());
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// The current RUN's mounts, prepared for a shell (locks held, relays running) until the
    /// returned value is dropped.
    fn shell_mounts(
        &self,
        s: &mut Shared<'_, '_>,
        at: &Checkpoint,
    ) -> Result<Option<(StepMounts, Prepared)>, SessionError> {
        let Some(m) = self.step_mounts.clone() else { return Ok(None) };
        let roots = MountRoots::gather(s.ctx, s.stages, &m, at.id).map_err(|e| format!("the step's mounts: {e}"))?;
        let p = mounts::prepare(s.ctx, &roots, &m, s.ctx.opts.run.isolation)
            .map_err(|e| format!("the step's mounts: {e}"))?;
        Ok(Some((m, p)))
    }

    /// Container isolation has no overlay (no mounts in a pod): the shell works on `/` itself,
    /// a snapshot says what it changed, and discarding puts the stage's layers back (the files
    /// come back with their content and metadata; only inode numbers differ).
    fn session_in_container(
        &mut self,
        s: &mut Shared<'_, '_>,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
        mounts: Option<&(StepMounts, Prepared)>,
    ) -> Result<(), SessionError> {
        let ctx = s.ctx;
        let (spec, interactive) = self.shell_spec(s, argv, PathBuf::from("/"), mounts)?;
        if interactive && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            sandbox::check_terminal_in_container()?;
        }
        ctx.emitter.emit(Event::ShellStarted { id: at.id, argv: spec.argv.clone(), interactive, when: Some(at.when) });
        let outcome = run_shell(s, at, &spec).map_err(|e| e.to_string())?;
        let root = self.files.get(s, self.index, &self.layers).map_err(|e| e.to_string())?;
        let changes = root.snap.snapshot().map_err(|e| format!("what the shell changed: {e}"))?;
        let reported = report::changes(&changes.entries);
        ctx.emitter.emit(Event::ShellFinished { id: at.id, exit_code: outcome.exit_code, changes: reported.clone() });
        let choice = if reported.is_empty() { ShellChoice::Discard } else { s.controller.shell_changes(at, &reported) };
        if choice == ShellChoice::Discard {
            if !reported.is_empty() {
                let keep = ctx.slash_keep.as_ref().ok_or("container isolation without its kept paths")?;
                let root = ctx.materialize_at_slash(keep, &self.layers, self.index).map_err(|e| e.to_string())?;
                let _ = self.files.replace(root);
            }
            ctx.emitter.emit(Event::ShellResolved { id: at.id, kept: false, layer: None });
            return Ok(());
        }
        let layer = self
            .commit_changes(s, at.id, changes, &shell_created_by(at), Some(at.when), false)
            .map_err(|e: BuildError| e.to_string())?;
        // The stage's files are no longer what its Dockerfile makes: it leaves the cache.
        self.leave_dockerfile();
        let summary = self.layer_summary(layer.as_ref(), at);
        ctx.emitter.emit(Event::ShellResolved { id: at.id, kept: true, layer: summary });
        Ok(())
    }

    fn session_on_overlay(
        &mut self,
        s: &mut Shared<'_, '_>,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
        root_dir: &Path,
        scratch: &Path,
        mounts: Option<&(StepMounts, Prepared)>,
    ) -> Result<(), SessionError> {
        let ctx = s.ctx;
        let mut ov = Overlay::mount(root_dir, scratch).map_err(|e| e.to_string())?;
        let (spec, interactive) = self.shell_spec(s, argv, ov.merged.clone(), mounts)?;
        ctx.emitter.emit(Event::ShellStarted { id: at.id, argv: spec.argv.clone(), interactive, when: Some(at.when) });
        let outcome = run_shell(s, at, &spec);
        ov.unmount().map_err(|e| e.to_string())?;
        let outcome = outcome.map_err(|e| e.to_string())?;
        let upper = Root::open(&ov.upper).map_err(|e| e.to_string())?;
        let root = self.files.get(s, self.index, &self.layers).map_err(|e| e.to_string())?;
        let changes = overlay::diff(&upper, root.root()).map_err(|e| format!("what the shell changed: {e}"))?;
        let reported = report::changes(&changes);
        ctx.emitter.emit(Event::ShellFinished { id: at.id, exit_code: outcome.exit_code, changes: reported.clone() });
        let choice = if reported.is_empty() { ShellChoice::Discard } else { s.controller.shell_changes(at, &reported) };
        if choice == ShellChoice::Discard {
            ctx.emitter.emit(Event::ShellResolved { id: at.id, kept: false, layer: None });
            return Ok(());
        }
        let root = self.files.get(s, self.index, &self.layers).map_err(|e| e.to_string())?;
        let touched = overlay::apply(&upper, root.root()).map_err(|e| format!("keep the shell's changes: {e}"))?;
        let changes = root.snap.snapshot_paths(&touched).map_err(|e| format!("snapshot the shell's changes: {e}"))?;
        let layer = self
            .commit_changes(s, at.id, changes, &shell_created_by(at), Some(at.when), false)
            .map_err(|e| e.to_string())?;
        // The stage's files are no longer what its Dockerfile makes: it leaves the cache.
        self.leave_dockerfile();
        let summary = self.layer_summary(layer.as_ref(), at);
        ctx.emitter.emit(Event::ShellResolved { id: at.id, kept: true, layer: summary });
        Ok(())
    }

    /// The shell (or command) as the step would run it: env, user, working directory.
    fn shell_spec(
        &mut self,
        s: &mut Shared<'_, '_>,
        argv: Option<Vec<String>>,
        run_root: PathBuf,
        mounts: Option<&(StepMounts, Prepared)>,
    ) -> Result<(RunSpec, bool), SessionError> {
        let ctx = s.ctx;
        let root = self.files.get(s, self.index, &self.layers).map_err(|e| e.to_string())?.root();
        let read = |p: &str| root.read_to_string(p).map_err(|e| format!("read {p}: {e}"));
        let user = sandbox::resolve_user(
            self.config.image.user().unwrap_or(""),
            read("/etc/passwd")?.as_deref(),
            read("/etc/group")?.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let interactive = argv.is_none();
        let argv = match argv {
            Some(a) => a,
            None => vec![default_shell(root)],
        };
        let mut env = run_env(&self.config.image, &self.config.args, &user.home);
        if let Some((_, prepared)) = mounts {
            env = with_mount_env(env, prepared);
        }
        let spec = RunSpec {
            root: run_root,
            argv,
            env,
            cwd: self.config.image.working_dir().unwrap_or("/").to_string(),
            user: user.ids.clone(),
            hostname: "trowel-debug".into(),
            isolation: ctx.opts.run.isolation,
            stdio: if interactive { StdioMode::Inherit } else { StdioMode::Piped },
            timeout: None,
            helper_exe: ctx.opts.run.helper_exe.clone(),
            extra_hosts: Vec::new(),
            mounts: mounts.map(|(_, p)| p.mounts.clone()).unwrap_or_default(),
            network: mounts.map(|(m, _)| m.network).unwrap_or_default(),
            privileged: mounts.is_some_and(|(m, _)| m.insecure),
            work_dir: Some(ctx.work.path().to_path_buf()),
            // A shell at a pause is ended by the person in it; the UI is not on screen.
            stop: None,
        };
        Ok((spec, interactive))
    }

    fn layer_summary(
        &self,
        layer: Option<&crate::digest::Digest>,
        at: &Checkpoint,
    ) -> Option<trowel_events::LayerSummary> {
        layer.and_then(|d| self.layers.iter().rev().find(|l| &l.descriptor.digest == d)).map(|l| l.summary(Some(at.id)))
    }
}

/// Runs the session, its output (when not interactive) reported as the checkpoint's.
fn run_shell(
    s: &Shared<'_, '_>,
    at: &Checkpoint,
    spec: &RunSpec,
) -> Result<sandbox::RunOutcome, sandbox::SandboxError> {
    let emitter = s.ctx.emitter.clone();
    let redactor = &s.ctx.redactor;
    let id = at.id;
    // Masked as a RUN's output is: a secret split between two chunks is still caught.
    let mut carry: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut on_output = |stream: Stream, bytes: &[u8]| {
        let (slot, stream) = match stream {
            Stream::Stdout => (0, OutputStream::Stdout),
            Stream::Stderr => (1, OutputStream::Stderr),
        };
        carry[slot].extend_from_slice(bytes);
        if let Some(data) = take_ready(&mut carry[slot], redactor) {
            emitter.emit(Event::Output { id, stream, data });
        }
    };
    let outcome = sandbox::run(spec, &mut on_output);
    for (slot, stream) in [(0, OutputStream::Stdout), (1, OutputStream::Stderr)] {
        if !carry[slot].is_empty() {
            let data = redactor.redact(&String::from_utf8_lossy(&carry[slot]));
            s.ctx.emitter.emit(Event::Output { id, stream, data });
        }
    }
    outcome
}

fn shell_created_by(at: &Checkpoint) -> String {
    let when = match at.when {
        trowel_events::When::BeforeStep => "before",
        trowel_events::When::AfterStep => "after",
    };
    format!("trowel debug shell at line {} ({} {when})", at.line, at.keyword)
}

/// The image's bash if it has one, else its /bin/sh.
fn default_shell(root: &Root) -> String {
    for s in ["/bin/bash", "/bin/sh"] {
        if root.stat(s).ok().flatten().is_some() {
            return s.to_string();
        }
    }
    "/bin/sh".to_string()
}
