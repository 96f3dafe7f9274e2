//! The trowel binary: a thin CLI over the library.

use clap::Parser;

use trowel::cli::{Cli, Command, deprecation_warnings, normalize_args};
use trowel::debugger::{Breakpoint, Debugger, check_breakpoints};
use trowel::log::LogPrinter;
use trowel::signals::Stoppable;
use trowel_engine::engine::{self, Continue, Emitter};
use trowel_events::EventSink;

fn main() {
    // The RUN sandbox re-executes this binary as its init process.
    if std::env::args().nth(1).as_deref() == Some("__sandbox-init") {
        trowel_engine::sandbox::helper_main();
    }
    // Before any thread starts (the helper above never starts one).
    trowel_engine::sandbox::give_big_buffers_back();
    let args = normalize_args(std::env::args().collect());
    let cli = Cli::parse_from(&args);
    // Rootless isolation: this process becomes root of its own user namespace and builds
    // there. First, while it has one thread, and before anything else is printed.
    if let Some(code) = trowel::rootless::enter_if_needed(&cli.command) {
        std::process::exit(code);
    }
    for warning in deprecation_warnings(&args) {
        eprintln!("warning: {warning}");
    }
    let log = match &cli.command {
        Command::Build(b) => Some(&b.log),
        Command::Debug(d) => Some(&d.build.log),
        Command::Warm(w) => Some(&w.log),
        _ => None,
    };
    if let Some(warning) = log.and_then(|l| l.format_warning()) {
        eprintln!("warning: {warning}");
    }
    let code = match cli.command {
        Command::Build(args) => run_build(&args),
        Command::Debug(args) => run_debug(&args),
        Command::Replay(args) => run_replay(&args),
        Command::Warm(args) => trowel::warm::main(&args),
        Command::Check(args) => trowel::check::main(&args),
        Command::Cache(args) => trowel::cache_cmd::main(&args),
        Command::Login(args) => trowel::login::login(&args),
        Command::Logout(args) => trowel::login::logout(&args),
        Command::Version => {
            println!("trowel {}", env!("CARGO_PKG_VERSION"));
            0
        }
    };
    std::process::exit(code);
}

/// A build whose roots may be overlays of the unpacked-layer store mounts them in a mount
/// namespace of its own, so a killed trowel leaves none behind. Done before the build's runtime
/// starts its threads, which inherit it: `unshare(CLONE_NEWNS)` moves only the calling thread,
/// so the signal watcher's thread, started earlier, stays behind, and it mounts nothing. Without
/// the privilege to do it, the build goes on (its store probe fails for the same reason, and the
/// log says why the store is not used).
fn own_mounts(opts: &engine::BuildOptions) {
    if opts.run.isolation == trowel_engine::sandbox::Isolation::Chroot && opts.layers.unpacked_store.is_some() {
        let _ = trowel_engine::fs::overlay_mount::private_mount_namespace();
    }
}

/// A signal watcher's stop, when one could be had; without it the build still runs.
fn signal_stop() -> Option<engine::Stop> {
    match engine::Stop::new() {
        Ok(stop) if trowel::signals::stop_on_signals(stop.clone()).is_ok() => Some(stop),
        _ => None,
    }
}

/// The build's options, a remote context fetched under `stop`; the exit code when they cannot
/// be had: 1 for a fetch a signal gave up (the build is aborted, as one stopped later is), 2
/// for anything else.
fn options(args: &trowel::cli::BuildArgs, stop: Option<&engine::Stop>) -> Result<engine::BuildOptions, i32> {
    args.to_options_stoppable(stop).map_err(|e| {
        eprintln!("error: {e}");
        if stop.is_some_and(engine::Stop::is_requested) { 1 } else { 2 }
    })
}

fn run_build(args: &trowel::cli::BuildArgs) -> i32 {
    // A signal aborts the build cleanly (`signals.rs`); watched from before a remote context
    // is fetched, which a signal stops too.
    let stop = signal_stop();
    match options(args, stop.as_ref()) {
        Ok(opts) => build_with(args, opts, stop),
        Err(code) => code,
    }
}

/// `trowel build` once its options are made (a remote context fetched).
fn build_with(args: &trowel::cli::BuildArgs, opts: engine::BuildOptions, stop: Option<engine::Stop>) -> i32 {
    if let Err(e) = trowel::rootless::check_dirs(&opts) {
        eprintln!("error: {e}");
        return 1;
    }
    own_mounts(&opts);
    let printer = LogPrinter::new(args.log.level(), args.log.log_format == "color", args.log.log_timestamp);
    let mut sinks: Vec<Box<dyn EventSink>> = vec![Box::new(printer)];
    if let Some(path) = &args.trace {
        match trowel::trace::TraceWriter::create(path, args.trace_content_limit) {
            Ok(w) => sinks.push(Box::new(w.with_base_listings(args.trace_base_listings))),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    let emitter = Emitter::with_redactor(sinks, opts.redactor());
    let mut breakpoints = Vec::new();
    for b in &args.breakpoints {
        match Breakpoint::parse(b) {
            Ok(b) => breakpoints.push(b),
            Err(e) => {
                eprintln!("error: --break: {e}");
                return 2;
            }
        }
    }
    if args.break_on_failure || args.shell_on_failure {
        breakpoints.push(Breakpoint::Failure);
    }
    // A breakpoint that can never fire is refused before anything runs. (A Dockerfile that does
    // not parse is left to the build, which reports it the usual way.)
    if !breakpoints.is_empty()
        && let Ok(planned) = engine::plan_dockerfile(&opts)
        && let Err(e) = check_breakpoints(
            &mut breakpoints,
            &planned,
            &opts.target_platforms().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        )
    {
        eprintln!("error: {e}");
        return 2;
    }
    let debugging = !breakpoints.is_empty() || args.require_approval;
    let result = match (debugging, stop) {
        (true, stop) => {
            let frontend = trowel::prompt::TerminalFrontend::new(args.shell_on_failure, args.require_approval);
            let dbg = Debugger::new(frontend, breakpoints, false);
            match stop {
                Some(stop) => engine::build(&opts, &emitter, &mut Stoppable::new(dbg, stop)),
                None => engine::build(&opts, &emitter, &mut { dbg }),
            }
        }
        (false, Some(stop)) => engine::build(&opts, &emitter, &mut Stoppable::new(Continue, stop)),
        (false, None) => engine::build(&opts, &emitter, &mut Continue),
    };
    if let Some(warning) = trowel::rootless::settle(result.is_ok()) {
        eprintln!("warning: {warning}");
    }
    prune_after(args);
    match result {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    }
}

/// `--cache-dir-max-size`: the cache dir pruned once the build is over (failed or not: what it
/// added takes space either way), its own entries no longer held. Printed, not an event: the
/// build and its trace are finished.
fn prune_after(args: &trowel::cli::BuildArgs) {
    let Some(max) = args.cache_dir_max_size else { return };
    if !args.cache_dir.is_dir() {
        return;
    }
    match trowel::cache_cmd::after_build(&args.cache_dir, max) {
        Ok(line) => eprintln!("{line}"),
        Err(e) => eprintln!("warning: pruning the cache dir: {e}"),
    }
}

fn run_replay(args: &trowel::cli::ReplayArgs) -> i32 {
    if let Some(b) = &args.compare {
        return run_compare(args, b);
    }
    let (header, events) = match trowel::trace::read(&args.trace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if args.summary {
        let state = trowel_events::BuildState::from_events(&events);
        print!("{}", trowel::trace::summary::summarize(&header, &state));
        return trowel::trace::summary::exit_code(&state);
    }
    let theme = match trowel::tui::Theme::select(args.ui.theme.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match trowel::tui::run_replay(&args.trace, !args.ui.no_mouse, &theme) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `trowel replay A --compare B`: 0 equivalent, 1 different, 2 a trace cannot be read.
fn run_compare(args: &trowel::cli::ReplayArgs, b: &std::path::Path) -> i32 {
    let comparison = match trowel::compare::Comparison::load(&args.trace, b) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if args.summary {
        print!("{}", trowel::compare::text::render(&comparison));
        return comparison.exit_code();
    }
    let theme = match trowel::tui::Theme::select(args.ui.theme.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match trowel::tui::run_compare(comparison, !args.ui.no_mouse, &theme) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// `trowel debug`: the build flags, plus breakpoints (failure by default), in the TUI.
fn run_debug(args: &trowel::cli::DebugArgs) -> i32 {
    // SIGTERM and SIGHUP, from here on: they stop a remote context's fetch, one before the UI
    // aborts the build as one during it does, and a SIGTERM after it ends trowel (`signals.rs`).
    let signals = match trowel::signals::DebugSignals::watch() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: watching SIGTERM and SIGHUP: {e}");
            return 1;
        }
    };
    let opts = match options(&args.build, Some(signals.stop())) {
        Ok(o) => o,
        Err(code) => return code,
    };
    // A test signals it here (`tests/tui_debug_signals.rs`): the moment is otherwise too short.
    trowel::test_hook::pause("TROWEL_TEST_PAUSE_BEFORE_UI");
    if let Err(e) = trowel::rootless::check_dirs(&opts) {
        eprintln!("error: {e}");
        return 1;
    }
    own_mounts(&opts);
    let mut breakpoints = Vec::new();
    for b in &args.build.breakpoints {
        match Breakpoint::parse(b) {
            Ok(b) => breakpoints.push(b),
            Err(e) => {
                eprintln!("error: --break: {e}");
                return 2;
            }
        }
    }
    let on_failure = args.build.break_on_failure || !args.no_break_on_failure;
    if on_failure && !breakpoints.iter().any(|b| matches!(b, Breakpoint::Failure)) {
        breakpoints.push(Breakpoint::Failure);
    }
    // Before the UI starts: a Dockerfile that does not parse (or cannot build) is reported as
    // `trowel build` reports it, file and line included, and recorded in the trace if one was
    // asked for; a breakpoint that can never fire is refused.
    match engine::plan_dockerfile(&opts) {
        Ok(planned) => {
            if let Err(e) = check_breakpoints(
                &mut breakpoints,
                &planned,
                &opts.target_platforms().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ) {
                eprintln!("error: {e}");
                return 2;
            }
        }
        // Reported as `trowel build` reports it, with the context already fetched, and stopped
        // as it is (SIGINT too, a second signal exits) under the stop already watched, so a
        // signal before this watcher is not lost.
        Err(_) => {
            let stop = signals.stop().clone();
            let _ = trowel::signals::stop_on_signals(stop.clone());
            return build_with(&args.build, opts, Some(stop));
        }
    }
    let theme = match trowel::tui::Theme::select(args.ui.theme.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cfg = trowel::tui::DebugConfig {
        options: opts,
        breakpoints,
        step_first: args.step,
        mouse: !args.ui.no_mouse,
        theme,
        trace: args.build.trace.clone(),
        signals,
    };
    let result = trowel::tui::run_debug(cfg);
    prune_after(&args.build);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
