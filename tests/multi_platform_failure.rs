//! A step that fails on one platform of a build for several: the same line may have built for
//! the other, so every account of the failure names the platform it failed for — the final
//! error, the replay summary's `FAILED:` line and the debugger's top bar — as BuildKit names
//! the vertex (`[linux/arm64 2/2] RUN …`). A build for one platform reads as it always has.

mod common;
mod tui_support;

use common::*;
use trowel::tui::{App, Theme};

/// A RUN that succeeds on amd64 and fails (exit code 1) on arm64.
fn dockerfile() -> String {
    format!("FROM {}/busybox:multi\nRUN [ \"$(uname -m)\" = x86_64 ]\n", env().registry)
}

/// What the final error line says after `error building image: `.
fn final_error(log: &str) -> String {
    let line = log.lines().find(|l| l.contains("error building image: ")).unwrap_or_else(|| panic!("{log}"));
    line.split_once("error building image: ").unwrap().1.to_string()
}

#[test]
fn a_step_failing_on_one_platform_is_said_of_that_platform() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile()).unwrap();
    let trace = ctx.path().join("trace.jsonl");
    let o = run(trowel()
        .args(["build", "--no-push", "--platform", "linux/amd64,linux/arm64", "--trace"])
        .arg(&trace)
        .arg("--context")
        .arg(ctx.path()));
    assert!(!o.status.success());
    let log = stderr(&o);
    let error = final_error(&log);
    assert!(error.starts_with("[linux/arm64] "), "{log}");
    assert!(error.contains("Dockerfile:2: RUN [ \"$(uname -m)\" = x86_64 ]: "), "{log}");
    assert!(error.contains("exit code 1"), "{log}");

    // The replay's summary.
    let summary = run(trowel().arg("replay").arg(&trace).arg("--summary"));
    let summary = stdout(&summary);
    let failed = summary.lines().find(|l| l.starts_with("FAILED: ")).unwrap_or_else(|| panic!("{summary}"));
    assert!(failed.starts_with("FAILED: [linux/arm64] "), "{summary}");

    // The debugger's top bar, replaying the trace.
    let events = trowel::trace::read(&trace).unwrap().1;
    let mut app = App::replay(trace.display().to_string(), &events);
    let t = tui_support::screen(&mut app, 120, 30, &Theme::dark());
    let buf = t.backend().buffer();
    let top: String = buf.content.iter().take(buf.area.width as usize).map(|c| c.symbol()).collect();
    assert!(top.contains("✗ failed at L2: [linux/arm64] "), "{top}");

    // A build for one platform names none.
    let o = run(trowel().args(["build", "--no-push", "--platform", "linux/arm64", "--context"]).arg(ctx.path()));
    assert!(!o.status.success());
    let error = final_error(&stderr(&o));
    assert!(!error.starts_with('['), "{error}");
    assert!(error.contains("Dockerfile:2: RUN [ \"$(uname -m)\" = x86_64 ]: "), "{error}");
}
