//! Pauses a test can hold open, in debug builds only: a few moments of `trowel debug` are too
//! short to signal it in otherwise (between its context's fetch and its UI; between its UI's end
//! and the end of the build's cleanup), and `tests/tui_debug_signals.rs` signals it there.

/// With the environment variable `var` naming a FILE, writes this process's pid to FILE and
/// waits until FILE is removed (a minute at most). Nothing in a release build, nor without the
/// variable.
pub fn pause(var: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(file) = std::env::var_os(var).map(std::path::PathBuf::from) else { return };
    if std::fs::write(&file, std::process::id().to_string()).is_err() {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while file.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
