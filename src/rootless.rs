//! Rootless isolation, the program's half: which commands enter the user namespace
//! (`trowel_engine::sandbox::userns`) before anything else runs — the process itself enters it
//! and goes on as the build — and the checks made once inside.
//!
//! `build` and `debug` enter it: they unpack images with their owners and run RUN steps.
//! `cache` does on a cache dir with a rootless store of a range mapping (its files belong to
//! subordinate ids). `warm`, `check`, `login` and `replay` never need it: they only read and
//! write files the user owns (a trace replayed is only read).

use trowel_engine::engine::BuildOptions;
use trowel_engine::sandbox::Isolation;
use trowel_engine::sandbox::userns::{self, Mapping};

use crate::cli::Command;

/// When `command` builds with rootless isolation: makes this process root of its own user
/// namespace, then returns `None` to go on (now inside it). `Some(code)`: it could not, the
/// reason printed; exit with `code`. Call it before any thread is started.
pub fn enter_if_needed(command: &Command) -> Option<i32> {
    let rootless = match command {
        Command::Build(b) => b.isolation.resolve() == Isolation::Rootless,
        Command::Debug(d) => d.build.isolation.resolve() == Isolation::Rootless,
        Command::Cache(c) => c.needs_user_namespace(),
        _ => return None,
    };
    if !rootless || userns::current_mapping().is_some() {
        return None;
    }
    match userns::enter(&mut |warning| eprintln!("warning: {warning}")) {
        Ok(_) => None,
        Err(e) => {
            eprintln!("error: {e}");
            Some(1)
        }
    }
}

/// Inside the namespace, before the build: the work dir must hold files owned by the
/// namespace's ids (every build root is made there).
pub fn check_dirs(opts: &BuildOptions) -> Result<(), String> {
    if opts.run.isolation != Isolation::Rootless {
        return Ok(());
    }
    let mapping = userns::current_mapping().unwrap_or(Mapping::Single);
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| format!("create work dir {}: {e}", opts.work_dir.display()))?;
    userns::check_dir(&opts.work_dir, mapping, "--work-dir (or TMPDIR)").map_err(|e| e.to_string())
}
