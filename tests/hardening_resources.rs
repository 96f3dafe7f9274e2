//! Resource limits: a RUN that never ends is stopped by `--run-timeout` (and leaves nothing
//! running), and RUN output many times the memory allowed goes through the engine, the secret masking, the log
//! printer and the trace writer in bounded memory — measured as trowel's peak RSS with
//! `/usr/bin/time -v`, not timed.
//!
//! The output volume is `TROWEL_HARDENING_OUTPUT_MIB` (default 512 MiB, four times the RSS
//! allowed, so anything that kept a quarter of it fails; half as lines, half as one line with no
//! newline at all, the worst case for anything that splits output into lines). 2048 MiB was the
//! default until the suite's time mattered more than the extra margin: set it to rerun that.

mod common;
mod hardening_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{env, run, trowel};
use hardening_support::{context, log};

/// Peak RSS allowed for trowel while it streams the output: far above its working set (about
/// 20 MiB), far below the output.
const MAX_RSS_KIB: u64 = 128 * 1024;

#[test]
fn a_run_that_never_ends_is_stopped_by_the_run_timeout() {
    let marker = format!("sleep {}", 7000 + std::process::id() % 1000);
    let ctx = context(&format!("FROM {}\nRUN echo started && ({marker} &) && {marker}\n", env().busybox()));
    let t0 = Instant::now();
    let o = run(trowel().args(["build", "--no-push", "--run-timeout", "2", "--context"]).arg(ctx.path()));
    let text = log(&o);
    assert!(!o.status.success(), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(60), "the timeout did not stop the build: {:?}", t0.elapsed());
    assert!(text.contains("RUN echo started") && text.contains("timed out after 2s"), "{text}");
    // The background process of the step died with it.
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn run_output_far_beyond_the_memory_limit_streams_in_bounded_memory() {
    let mib: u64 = std::env::var("TROWEL_HARDENING_OUTPUT_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let half = mib / 2 * 1024 * 1024;
    let ctx = context(&format!(
        "FROM {}\nARG API_TOKEN\n\
         RUN yes 'a line of RUN output, repeated until there are gigabytes of it' | head -c {half}\n\
         RUN head -c {half} /dev/zero | tr '\\0' 'a'\n",
        env().busybox()
    ));
    let report = ctx.path().join("time.txt");
    // The trace goes to /dev/null: every event is still serialised and written, but the disk
    // does not have to hold gigabytes of it.
    let o = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_trowel"))
        .args(["build", "--no-push", "--build-arg", "API_TOKEN=secret-token-in-scope", "--context"])
        .arg(ctx.path())
        .arg("--trace")
        .arg("/dev/null")
        .env_remove("DOCKER_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run trowel under /usr/bin/time");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(&report).unwrap();
    let rss: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {report}"));
    eprintln!("{mib} MiB of RUN output: peak RSS {rss} KiB");
    assert!(rss < MAX_RSS_KIB, "trowel peaked at {rss} KiB streaming {mib} MiB of output");
}
