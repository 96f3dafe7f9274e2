//! The trowel binary: a thin CLI over the library.

use clap::Parser;

use trowel::build::{self, Continue, Emitter, EventSink};
use trowel::cli::{Cli, Command, Verbosity, normalize_args};
use trowel::log::{Level, LogPrinter};

fn main() {
    // The RUN sandbox re-executes this binary as its init process.
    if std::env::args().nth(1).as_deref() == Some("__sandbox-init") {
        trowel::sandbox::helper_main();
    }
    let cli = Cli::parse_from(normalize_args(std::env::args().collect()));
    let code = match cli.command {
        Command::Build(args) => run_build(&args),
        Command::Warm(args) => trowel::warm::main(&args),
    };
    std::process::exit(code);
}

fn run_build(args: &trowel::cli::BuildArgs) -> i32 {
    let opts = match args.to_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let level = match args.verbosity {
        Verbosity::Trace | Verbosity::Debug => Level::Debug,
        Verbosity::Info => Level::Info,
        Verbosity::Warn => Level::Warn,
        Verbosity::Error | Verbosity::Fatal | Verbosity::Panic => Level::Error,
    };
    let printer = LogPrinter::new(level, args.log_format != "text", args.log_timestamp);
    let sinks: Vec<Box<dyn EventSink>> = vec![Box::new(printer)];
    let emitter = Emitter::new(sinks);
    match build::build(&opts, &emitter, &mut Continue) {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    }
}
