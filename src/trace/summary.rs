//! `trowel replay FILE --summary`: a plain-text post-mortem of a recorded build, for CI logs.
//!
//! It lists the build checks' findings and the debugger's breakpoints (when the trace recorded
//! them), then every step that ran with its line, status, run time, layer size and cache result,
//! and under it the debugger's pauses there (time paused is shown apart from the run time) and
//! what reading from another stage or an image took it (the paths taken out of its layers, or a
//! whole root of them); a debugger shell session is an entry of its own, before or after its step
//! as it ran, with its own time and the layer its kept changes became. Then the push decision,
//! and the failure (with the failing step's last output lines) or the image and where it went;
//! for a build for several platforms, each stage instance with its platform, each platform's
//! image and the index. A trace that stops mid-build (the build was killed) says so and shows
//! where it stopped; a step it never saw finish shows its run time up to the trace's last event,
//! marked `≥` as unfinished. Everything comes from the shared fold,
//! [`BuildState`], so the summary says what the log and the debugger said.

use std::fmt::Write;

use crate::trace::Header;
use crate::units::bytes;
use trowel_events::state::maker::side;
use trowel_events::state::{BuildState, Outcome, Pause, ShellSession, StepState, StepView};
use trowel_events::{CacheResult, ResumeAction, When};

/// Output lines shown for the step that failed (or was running when the trace ends).
const TAIL_LINES: usize = 20;

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// Renders the summary of a trace.
pub fn summarize(header: &Header, state: &BuildState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trowel trace (format {}, trowel {}, started {})",
        header.trowel_trace, header.trowel_version, header.started
    );
    if state.events > 0 {
        let _ = writeln!(
            out,
            "Dockerfile: {} ({} stage(s)), {}{}",
            state.dockerfile_path,
            // The Dockerfile's stages, not their instances (one per platform in such a build).
            state.stages.iter().map(|s| s.number()).collect::<std::collections::BTreeSet<_>>().len(),
            if state.platforms.is_empty() {
                format!("platform {}", state.platform)
            } else {
                format!("platforms {}", state.platforms.join(", "))
            },
            if state.destinations.is_empty() {
                String::new()
            } else {
                format!(", destinations: {}", state.destinations.join(", "))
            }
        );
    }
    if let Some(o) = &state.context_origin {
        let _ = writeln!(out, "{}", crate::context_arg::describe(o));
    }
    // Build checks first: they were reported before anything ran (or as a base was resolved).
    if !state.checks.is_empty() {
        let _ = writeln!(out, "Build checks: {} finding(s)", state.checks.len());
        for c in &state.checks {
            let kind = if c.error { "error" } else { "warning" };
            let url = c.url.as_ref().map(|u| format!(" ({u})")).unwrap_or_default();
            let _ = writeln!(out, "  line {:>3}  {kind}  {}: {}{url}", c.line, c.rule, c.message);
        }
    }
    // The debugger's breakpoints, as the trace recorded them (those that fired are under the
    // steps where they did).
    if let Some(set) = &state.breakpoints {
        let mut line =
            if set.is_empty() { "Breakpoints: none".to_string() } else { format!("Breakpoints: {}", set.join(", ")) };
        let removed: Vec<&str> =
            state.breakpoints_ever.iter().filter(|b| !set.contains(b)).map(String::as_str).collect();
        if !removed.is_empty() {
            let _ = write!(line, " (removed during the build: {})", removed.join(", "));
        }
        let _ = writeln!(out, "{line}");
    }
    for stage in &state.stages {
        let ran: Vec<&StepView> =
            stage.steps.iter().filter_map(|id| state.step(*id)).filter(|s| s.started_ms.is_some()).collect();
        if ran.is_empty() {
            continue;
        }
        let name = stage.name.clone().unwrap_or_else(|| stage.number().to_string());
        // In a build for several platforms, each platform's instance of a stage is listed.
        let platform = stage.platform_label(&state.platforms).map(|p| format!(" ({p})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "Stage {name}{platform}: FROM {}{}",
            stage.base,
            if stage.needed { "" } else { " (not needed, skipped)" }
        );
        for s in ran {
            step_lines(&mut out, s, state);
        }
    }
    for w in &state.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some((hits, misses, reused)) = state.cache_summary {
        let _ = writeln!(out, "Cache: {hits} hit(s), {misses} miss(es), {} reused", bytes(reused));
    }
    out.push_str(&ending(state));
    out
}

/// How the build ended: the push decision, then the failure (with the failing step's last
/// output lines), the image and where it was pushed, or where an unfinished build stopped. It is
/// the end of the summary, and what `trowel debug` prints once its UI is gone.
pub fn ending(state: &BuildState) -> String {
    let mut out = String::new();
    let decision = match &state.push_decision {
        Some(d) => Some(format!(
            "Push {}{}",
            if d.approved { "approved" } else { "refused" },
            d.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
        )),
        None if state.review.is_some() && !state.is_over() => {
            Some("Push review: the trace ends while it waits for an answer".to_string())
        }
        None => None,
    };
    match (state.outcome(), &state.failure, &state.finished) {
        (Outcome::Failed | Outcome::Aborted, Some(f), _) => {
            if let Some(d) = &decision {
                let _ = writeln!(out, "{d}");
            }
            let _ = writeln!(out, "{}: {}", if f.aborted { "ABORTED" } else { "FAILED" }, f.error);
            if let Some(s) = state.failed_step().and_then(|id| state.step(id)) {
                tail(&mut out, s);
            }
        }
        (Outcome::Finished, _, Some(f)) => {
            if let Some(index) = &state.index {
                // A build for several platforms: each platform's image, then the index naming them.
                for i in &state.images {
                    let _ = writeln!(
                        out,
                        "Image {}: {}, {} layer(s), {}",
                        i.platform.as_deref().unwrap_or("?"),
                        i.manifest_digest,
                        i.layers.len(),
                        bytes(i.layers_size())
                    );
                }
                let platforms: Vec<&str> = index.manifests.iter().map(|m| m.platform.as_str()).collect();
                let _ = writeln!(out, "Index: {} ({}): {}", index.digest, index.media_type, platforms.join(", "));
            } else if let Some(i) = &state.image {
                let _ = writeln!(
                    out,
                    "Image: {}, {} layer(s), {}",
                    i.manifest_digest,
                    i.layers.len(),
                    bytes(i.layers_size())
                );
            }
            if let Some(d) = &decision {
                let _ = writeln!(out, "{d}");
            }
            let pushed: Vec<String> = state
                .pushes
                .iter()
                .filter_map(|p| p.finished.as_ref().map(|(d, _)| format!("{}@{d}", repository(&p.destination))))
                .collect();
            if pushed.is_empty() {
                let _ = writeln!(out, "Not pushed");
            } else {
                let _ = writeln!(out, "Pushed {}", pushed.join(", "));
            }
            let paused = state.paused_ms();
            let _ = writeln!(
                out,
                "Built in {}{}",
                secs(f.duration_ms),
                if paused > 0 { format!(" ({} of it paused in the debugger)", secs(paused)) } else { String::new() }
            );
        }
        _ => {
            if let Some(d) = &decision {
                let _ = writeln!(out, "{d}");
            }
            let _ = writeln!(
                out,
                "INTERRUPTED: the trace ends at {} without the build finishing (killed?)",
                secs(state.last_ms)
            );
            let (what, s, since) = match (state.open_pause(), state.current.and_then(|id| state.step(id))) {
                (Some((s, p)), _) => (format!("paused {}", side(p.when)), s, format!("since {}", secs(p.started_ms))),
                (None, Some(s)) => (
                    "running".to_string(),
                    s,
                    format!(
                        "started at {}, ran ≥{}",
                        secs(s.started_ms.unwrap_or_default()),
                        secs(s.run_ms(state.last_ms).unwrap_or_default())
                    ),
                ),
                (None, None) => return out,
            };
            let _ = writeln!(out, "It was {what} {}:{}: {} ({since})", state.dockerfile_path, s.line, s.ran_line());
            tail(&mut out, s);
        }
    }
    out
}

/// `registry/repo:tag` → `registry/repo` (a port's colon is kept).
fn repository(destination: &str) -> &str {
    destination.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(destination, |(r, _)| r)
}

/// How `trowel replay --summary` exits: as the build did (0, or a failed RUN's exit code), and
/// 1 for a build that was aborted, failed otherwise, or never finished.
pub fn exit_code(state: &BuildState) -> i32 {
    match state.outcome() {
        Outcome::Finished => 0,
        Outcome::Failed => {
            state.failed_step().and_then(|id| state.step(id)).and_then(|s| s.exit_code).filter(|&c| c > 0).unwrap_or(1)
        }
        Outcome::Aborted | Outcome::Unfinished => 1,
    }
}

/// A step's line, its pauses under it, and its shell sessions as entries of their own (before
/// or after it, as they ran).
fn step_lines(out: &mut String, s: &StepView, state: &BuildState) {
    for sh in s.shells_on(When::BeforeStep) {
        let _ = writeln!(out, "{}", shell_entry(s, sh, state));
    }
    let status = match s.state {
        StepState::Failed => "FAILED",
        // Aborted at a pause before it ran, or left when the build failed elsewhere.
        StepState::Running if state.is_over() => "stopped",
        // The trace ends while it runs (the build was killed).
        StepState::Running => "unfinished",
        other => other.label(),
    };
    // A run time, never the time paused; up to the trace's end for a step never finished.
    let time = match s.run_ms(state.last_ms) {
        Some(ms) if s.is_unfinished() => format!("≥{}", secs(ms)),
        Some(ms) => secs(ms),
        None => "-".into(),
    };
    // An ONBUILD trigger runs at its stage's FROM line: marked, as the Steps pane marks it.
    let text = if s.onbuild { format!("(ONBUILD) {}", s.ran_line()) } else { s.ran_line().to_string() };
    let mut line = format!("  line {:<4} {:<8} {:>6}  {:<48}", s.line, status, time, truncate(&text, 48));
    if let Some(l) = s.layer.as_ref().filter(|_| s.stage_snapshot.is_none()) {
        let _ = write!(line, "  layer {}", bytes(l.size));
    }
    if s.paused_ms > 0 {
        let _ = write!(line, "  paused {}", secs(s.paused_ms));
    }
    if let Some(c) = &s.cache {
        let _ = match &c.result {
            CacheResult::Hit { .. } => write!(line, "  cache hit"),
            CacheResult::Miss { explanation, .. } => write!(line, "  cache miss: {explanation}"),
            CacheResult::Error { message } => write!(line, "  cache error: {message}"),
        };
    }
    let _ = writeln!(out, "{}", line.trim_end());
    if let (Some(from), Some(l)) = (s.stage_snapshot, &s.layer) {
        let _ = writeln!(
            out,
            "    single snapshot of lines {from}–{} (--single-snapshot): layer {}",
            s.line,
            bytes(l.size)
        );
    }
    if let Some(d) = s.deviation() {
        let _ = writeln!(out, "    {d}");
    }
    for m in &s.mounts {
        let _ = writeln!(out, "    mount {}", crate::tui::format::mount(m));
    }
    for r in &s.reads {
        let why = r.why.as_ref().map(|w| format!(" (a whole root: {w})")).unwrap_or_default();
        let _ = writeln!(out, "    read from {}{why}", r.line());
    }
    if let Some((by, ms)) = s.ran_later {
        let line = state.step(by).map_or_else(|| "a later step".to_string(), |b| format!("line {}", b.line));
        let _ = writeln!(out, "    run later after all, for {line} (in its time): {}", secs(ms));
    }
    for (target, paths) in s.mount_leaks().into_iter().filter(|(_, p)| !p.is_empty()) {
        let _ = writeln!(out, "    LEAKED into the layer under mount target {target}: {}", paths.join(", "));
    }
    for p in &s.pauses {
        let _ = writeln!(out, "    {}", pause_line(p));
    }
    for sh in s.shells_on(When::AfterStep) {
        let _ = writeln!(out, "{}", shell_entry(s, sh, state));
    }
}

/// A shell session's entry: `  line 6    shell     12.0s  debug shell before line 6: sh
/// (interactive), exit 0, changed 1 path(s), kept as layer sha256:… (1.2 kB)`.
fn shell_entry(s: &StepView, sh: &ShellSession, state: &BuildState) -> String {
    let time = match sh.finished_ms {
        Some(_) => secs(sh.duration_ms(state.last_ms)),
        None => format!("≥{}", secs(sh.duration_ms(state.last_ms))),
    };
    format!("  line {:<4} {:<8} {:>6}  {}", s.line, "shell", time, shell_line(s, sh))
}

/// `paused before the step (breakpoint at line 3 [3]) for 2.5s, then stepped`.
fn pause_line(p: &Pause) -> String {
    let why: Vec<String> = p
        .reasons
        .iter()
        .map(|r| match &r.breakpoint {
            Some(b) => format!("{} [{b}]", r.message),
            None => r.message.clone(),
        })
        .collect();
    let why = if why.is_empty() { String::new() } else { format!(" ({})", why.join(", ")) };
    let how = match &p.resumed {
        None => return format!("paused {} the step{why}: still paused when the trace ends", side(p.when)),
        Some(r) => {
            let then = match &r.action {
                ResumeAction::Continue => "continued".to_string(),
                ResumeAction::Step => "stepped".to_string(),
                ResumeAction::RunTo { line } => format!("ran to line {line}"),
                ResumeAction::Abort { reason } => format!("aborted: {reason}"),
                ResumeAction::Retry { edited: None } => "re-ran the step".to_string(),
                ResumeAction::Retry { edited: Some(text) } => format!("ran it edited: {text}"),
            };
            format!(" for {}, then {then}", secs(r.paused_ms))
        }
    };
    format!("paused {} the step{why}{how}", side(p.when))
}

/// `debug shell after line 6: sh (interactive), exit 0, changed 2 path(s), kept as layer
/// sha256:… (1.2 kB)`.
fn shell_line(s: &StepView, sh: &ShellSession) -> String {
    let mut line = format!(
        "debug shell {} line {}: {} ({})",
        side(sh.when()),
        s.line,
        sh.argv.join(" "),
        if sh.interactive { "interactive" } else { "command" }
    );
    let Some(code) = sh.exit_code else {
        line.push_str(", still running when the trace ends");
        return line;
    };
    let _ = write!(line, ", exit {code}, changed {} path(s)", sh.changes.len());
    let _ = match (sh.kept, &sh.layer) {
        (Some(true), Some(l)) => write!(line, ", kept as layer {} ({})", l.digest.short(), bytes(l.size)),
        (Some(true), None) => write!(line, ", kept (no layer: nothing changed)"),
        (Some(false), _) => write!(line, ", discarded"),
        (None, _) => write!(line, ", no decision to keep or discard the changes"),
    };
    line
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// The step's last output lines.
fn tail(out: &mut String, s: &StepView) {
    let lines: Vec<&str> = s.output.lines().collect();
    if lines.is_empty() {
        return;
    }
    let skip = lines.len().saturating_sub(TAIL_LINES);
    let shown = lines.len() - skip;
    let more = skip > 0 || s.output.is_truncated();
    let _ = writeln!(out, "  output{}:", if more { format!(" (last {shown} lines)") } else { String::new() });
    for l in &lines[skip..] {
        let _ = writeln!(out, "  | {l}");
    }
}
