//! Shell sessions at a debugger pause: a shell (or a command) inside the build root, as the
//! step runs (environment, user, working directory, isolation), on an overlay so that what it
//! changes can be kept as a layer or discarded with the root left exactly as it was.

use crate::engine::build::Engine;
use crate::engine::controller::{Checkpoint, ShellChoice};
use crate::engine::error::BuildError;
use crate::engine::report;
use crate::engine::stage::StageState;
use crate::engine::steps::layer::commit_changes;
use crate::engine::vars::run_env;
use crate::fs::Root;
use crate::fs::overlay::{self, Overlay};
use crate::sandbox::{self, RunSpec, StdioMode, Stream};
use trowel_events::{Event, LayerSummary, OutputStream};

impl Engine<'_> {
    pub(crate) fn shell_session(
        &mut self,
        st: &mut StageState,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
    ) -> Result<(), BuildError> {
        self.ensure_root(st)?;
        let fail = |m: String| BuildError::Setup(m);
        if self.container.is_some() {
            return self.session_in_container(st, at, argv).map_err(fail);
        }
        let root_dir = st.root.as_ref().expect("root ensured").dir.clone();
        let scratch = self.scratch_dir("shell")?;
        let result = self.session_in(st, at, argv, &root_dir, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        result.map_err(fail)
    }

    /// Container isolation has no overlay (no mounts in a pod): the shell works on `/` itself,
    /// a snapshot says what it changed, and discarding puts the stage's layers back (the files
    /// come back with their content and metadata; only inode numbers differ).
    fn session_in_container(
        &mut self,
        st: &mut StageState,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
    ) -> Result<(), String> {
        let (spec, interactive) = self.shell_spec(st, at, argv, std::path::PathBuf::from("/"))?;
        self.emitter.emit(Event::ShellStarted { id: at.id, argv: spec.argv.clone(), interactive, when: Some(at.when) });
        let outcome = self.run_shell(at, &spec).map_err(|e| e.to_string())?;
        let root = st.root.as_mut().expect("root ensured");
        let changes = root.snap.snapshot().map_err(|e| format!("what the shell changed: {e}"))?;
        self.emitter.emit(Event::ShellFinished {
            id: at.id,
            exit_code: outcome.exit_code,
            changes: report::changes(&changes.entries),
        });
        let choice = if changes.entries.is_empty() {
            ShellChoice::Discard
        } else {
            self.controller.shell_changes(at, &report::changes(&changes.entries))
        };
        if choice == ShellChoice::Discard {
            if !changes.entries.is_empty() {
                let layers = st.layers.clone();
                st.root = Some(self.materialize_at_slash(&layers, st.index).map_err(|e| e.to_string())?);
            }
            self.emitter.emit(Event::ShellResolved { id: at.id, kept: false, layer: None });
            return Ok(());
        }
        let created_by = shell_created_by(at);
        let layer = commit_changes(self, st, at.id, changes, &created_by, "trowel: manual step", false)
            .map_err(|e| e.to_string())?;
        self.emitter.emit(Event::ShellResolved { id: at.id, kept: true, layer: layer_summary(st, layer, at) });
        Ok(())
    }

    fn session_in(
        &mut self,
        st: &mut StageState,
        at: &Checkpoint,
        argv: Option<Vec<String>>,
        root_dir: &std::path::Path,
        scratch: &std::path::Path,
    ) -> Result<(), String> {
        let mut ov = Overlay::mount(root_dir, scratch).map_err(|e| e.to_string())?;
        let (spec, interactive) = self.shell_spec(st, at, argv, ov.merged.clone())?;
        self.emitter.emit(Event::ShellStarted { id: at.id, argv: spec.argv.clone(), interactive, when: Some(at.when) });
        let outcome = self.run_shell(at, &spec);
        ov.unmount().map_err(|e| e.to_string())?;
        let outcome = outcome.map_err(|e| e.to_string())?;
        let root = st.root.as_ref().expect("root ensured").root();
        let upper = Root::open(&ov.upper).map_err(|e| e.to_string())?;
        let changes = overlay::diff(&upper, root).map_err(|e| format!("what the shell changed: {e}"))?;
        self.emitter.emit(Event::ShellFinished {
            id: at.id,
            exit_code: outcome.exit_code,
            changes: report::changes(&changes),
        });
        let choice = if changes.is_empty() {
            ShellChoice::Discard
        } else {
            self.controller.shell_changes(at, &report::changes(&changes))
        };
        if choice == ShellChoice::Discard {
            self.emitter.emit(Event::ShellResolved { id: at.id, kept: false, layer: None });
            return Ok(());
        }
        let touched = overlay::apply(&upper, root).map_err(|e| format!("keep the shell's changes: {e}"))?;
        let snap = &mut st.root.as_mut().expect("root").snap;
        let changes = snap.snapshot_paths(&touched).map_err(|e| format!("snapshot the shell's changes: {e}"))?;
        let layer = commit_changes(self, st, at.id, changes, &shell_created_by(at), "trowel: manual step", false)
            .map_err(|e| e.to_string())?;
        self.emitter.emit(Event::ShellResolved { id: at.id, kept: true, layer: layer_summary(st, layer, at) });
        Ok(())
    }

    /// The shell (or command) as the step would run it: env, user, working directory.
    fn shell_spec(
        &self,
        st: &StageState,
        _at: &Checkpoint,
        argv: Option<Vec<String>>,
        run_root: std::path::PathBuf,
    ) -> Result<(RunSpec, bool), String> {
        let root = st.root.as_ref().expect("root ensured").root();
        let read = |p: &str| root.read_to_string(p).map_err(|e| format!("read {p}: {e}"));
        let user = sandbox::resolve_user(
            st.config.user().unwrap_or(""),
            read("/etc/passwd")?.as_deref(),
            read("/etc/group")?.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let interactive = argv.is_none();
        let argv = match argv {
            Some(a) => a,
            None => vec![default_shell(root)],
        };
        let spec = RunSpec {
            root: run_root,
            argv,
            env: run_env(&st.config, &st.args, &user.home),
            cwd: st.config.working_dir().unwrap_or("/").to_string(),
            user: user.ids.clone(),
            hostname: "trowel-debug".into(),
            isolation: self.opts.isolation,
            stdio: if interactive { StdioMode::Inherit } else { StdioMode::Piped },
            timeout: None,
            helper_exe: self.opts.helper_exe.clone(),
            extra_hosts: Vec::new(),
        };
        Ok((spec, interactive))
    }

    /// Runs the session, its output (when not interactive) reported as the checkpoint's.
    fn run_shell(&self, at: &Checkpoint, spec: &RunSpec) -> Result<sandbox::RunOutcome, sandbox::SandboxError> {
        let emitter = self.emitter.clone();
        let id = at.id;
        let mut on_output = |s: Stream, bytes: &[u8]| {
            let stream = match s {
                Stream::Stdout => OutputStream::Stdout,
                Stream::Stderr => OutputStream::Stderr,
            };
            emitter.emit(Event::Output { id, stream, data: String::from_utf8_lossy(bytes).into_owned() });
        };
        sandbox::run(spec, &mut on_output)
    }
}

fn shell_created_by(at: &Checkpoint) -> String {
    let when = match at.when {
        trowel_events::When::BeforeStep => "before",
        trowel_events::When::AfterStep => "after",
    };
    format!("trowel debug shell at line {} ({} {when})", at.line, at.keyword)
}

fn layer_summary(st: &StageState, layer: Option<crate::digest::Digest>, at: &Checkpoint) -> Option<LayerSummary> {
    layer.and_then(|d| st.layers.iter().rev().find(|l| l.descriptor.digest == d)).map(|l| LayerSummary {
        digest: l.descriptor.digest.clone().into(),
        diff_id: Some(l.diff_id.clone().into()),
        size: l.descriptor.size,
        uncompressed_size: l.uncompressed_size,
        media_type: l.descriptor.media_type.clone(),
        step: Some(at.id),
    })
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
