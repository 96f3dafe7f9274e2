//! Rootless isolation, the program's half: which commands enter the user namespace
//! (`trowel_engine::sandbox::userns`) before anything else runs — the process itself enters it
//! and goes on as the build — and the checks made once inside.
//!
//! `build` and `debug` enter it: they unpack images with their owners and run RUN steps.
//! `build` goes on while the setuid helpers write the namespace's maps, and waits for them only
//! where it first needs them (`userns`' module doc): a build whose every step is a cache hit
//! never does, and must not pay for two setuid programs' start.
//! `cache` does on a cache dir with a rootless store of a range mapping (its files belong to
//! subordinate ids). `warm`, `check`, `login` and `replay` never need it: they only read and
//! write files the user owns (a trace replayed is only read).

use trowel_engine::engine::BuildOptions;
use trowel_engine::sandbox::Isolation;
use trowel_engine::sandbox::userns;

use crate::cli::Command;

/// When `command` builds with rootless isolation: makes this process root of its own user
/// namespace, then returns `None` to go on (now inside it). `Some(code)`: it could not, the
/// reason printed; exit with `code`. Call it before any thread is started.
pub fn enter_if_needed(command: &Command) -> Option<i32> {
    // `debug` and `cache` wait for the maps at once: neither has a fully cached path worth the
    // care (a debugger waits for a person; `cache` tidies files owned by the namespace's ids).
    let (rootless, defer) = match command {
        Command::Build(b) => (b.isolation.resolve() == Isolation::Rootless, true),
        Command::Debug(d) => (d.build.isolation.resolve() == Isolation::Rootless, false),
        Command::Cache(c) => (c.needs_user_namespace(), false),
        _ => return None,
    };
    if !rootless || userns::current_mapping().is_some() {
        return None;
    }
    match userns::enter(&mut |warning| eprintln!("warning: {warning}"), defer) {
        Ok(_) => None,
        Err(e) => {
            eprintln!("error: {e}");
            Some(1)
        }
    }
}

/// Inside the namespace, before the build: the work dir must take files (every build root is
/// made there). That it can hold files owned by the namespace's ids needs the maps to check,
/// so the engine checks it where it first needs them (`BuildContext::scratch_dir`).
pub fn check_dirs(opts: &BuildOptions) -> Result<(), String> {
    if opts.run.isolation != Isolation::Rootless {
        return Ok(());
    }
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| format!("create work dir {}: {e}", opts.work_dir.display()))?;
    userns::check_dir_writable(&opts.work_dir, "--work-dir (or TMPDIR)").map_err(|e| e.to_string())
}

/// After the build: waits for the namespace's maps if nothing needed them yet (so the helpers
/// are not left at work, and a machine that cannot map is said even by a build that did not
/// need it). `Some(warning)` when they failed and the build succeeded: its next build that
/// runs a step will fail, for the reason given. A failed build already said why.
pub fn settle(built: bool) -> Option<String> {
    match userns::mapped() {
        Err(e) if built => Some(format!(
            "{e} (this build needed none of its namespace's ids, every step being a cache hit; one that runs a step \
             will fail)"
        )),
        _ => None,
    }
}
