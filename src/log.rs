//! The plain-log front end: kaniko-style lines (`INFO[0003] RUN make`) on stderr, RUN output
//! passed through untouched on stdout, and, when stderr is a terminal, progress bars for pulls
//! and pushes.
//!
//! The printer folds every event into a [`BuildState`] (the fold the summary and the debugger
//! share) before it prints, so lines that sum up (the new layers, the time paused) say what the
//! others say; [`lines`] is what an event prints, kept apart from the terminal so it can be
//! tested.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::units::bytes;
use trowel_events::state::BuildState;
use trowel_events::{
    BaseSource, BlobPushAction, CacheResult, Envelope, Event, EventSink, OutputStream, ResumeAction, StepStatus, When,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

pub struct LogPrinter {
    level: Level,
    color: bool,
    timestamps: bool,
    bars: Option<MultiProgress>,
    active: HashMap<String, ProgressBar>,
    /// The build so far (the fold every viewer shares), for lines that say more than their
    /// event: the closing line's count of new layers, say.
    state: BuildState,
    /// In a build for several platforms, whose RUNs run at the same time: each step's output
    /// not yet ended by a newline, so every line can be tagged with its platform.
    partial: HashMap<(trowel_events::StepId, bool), String>,
}

impl LogPrinter {
    pub fn new(level: Level, color: bool, timestamps: bool) -> LogPrinter {
        let tty = std::io::stderr().is_terminal();
        LogPrinter {
            level,
            color: color && tty,
            timestamps,
            bars: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            active: HashMap::new(),
            state: BuildState::lean(),
            partial: HashMap::new(),
        }
    }

    fn line(&self, level: Level, ms: u64, msg: &str) {
        if level < self.level {
            return;
        }
        let text = format_line(level, self.color, self.timestamps, ms / 1000, msg);
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn bar(&mut self, key: &str, label: &str, total: u64) -> Option<&ProgressBar> {
        let mp = self.bars.as_ref()?;
        if !self.active.contains_key(key) {
            let pb = mp.add(ProgressBar::new(total));
            pb.set_style(
                ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            pb.set_message(label.to_string());
            self.active.insert(key.to_string(), pb);
        }
        self.active.get(key)
    }

    fn finish_bar(&mut self, key: &str) {
        if let Some(pb) = self.active.remove(key) {
            pb.finish_and_clear();
            if let Some(mp) = &self.bars {
                mp.remove(&pb);
            }
        }
    }
}

/// One kaniko-style line: `INFO[0003] msg`, with an optional RFC 3339 stamp in front and the
/// level tag coloured for terminals. Shared by the build log and `trowel warm`.
pub fn format_line(level: Level, color: bool, timestamps: bool, secs: u64, msg: &str) -> String {
    let (tag, code) = match level {
        Level::Debug => ("DEBU", "\x1b[37m"),
        Level::Info => ("INFO", "\x1b[36m"),
        Level::Warn => ("WARN", "\x1b[33m"),
        Level::Error => ("ERRO", "\x1b[31m"),
    };
    let stamp =
        if timestamps { format!("{} ", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")) } else { String::new() };
    if color { format!("{stamp}{code}{tag}\x1b[0m[{secs:04}] {msg}") } else { format!("{stamp}{tag}[{secs:04}] {msg}") }
}

impl EventSink for LogPrinter {
    fn event(&mut self, env: &Envelope) {
        self.state.apply(env);
        // What the terminal shows besides log lines: RUN output as it is, and progress bars.
        match &env.event {
            Event::Output { data, stream, id } => {
                // RUN output is the user's program talking: pass it through as is — but for
                // the platform's tag on each line when several platforms' RUNs run at once.
                let tagged = platform_tag(&self.state, &env.event).map(|tag| {
                    let key = (*id, *stream == OutputStream::Stderr);
                    let buf = self.partial.entry(key).or_default();
                    buf.push_str(data);
                    let end = buf.rfind('\n').map_or(0, |i| i + 1);
                    let whole: String = buf.drain(..end).collect();
                    whole.lines().map(|l| format!("[{tag}] {l}\n")).collect::<String>()
                });
                let data = tagged.as_deref().unwrap_or(data);
                let write = |w: &mut dyn Write| {
                    let _ = w.write_all(data.as_bytes());
                    let _ = w.flush();
                };
                match (&self.bars, stream) {
                    (Some(mp), _) => mp.suspend(|| write(&mut std::io::stdout())),
                    (None, OutputStream::Stdout) => write(&mut std::io::stdout()),
                    (None, OutputStream::Stderr) => write(&mut std::io::stderr()),
                }
            }
            Event::PullProgress { digest, done, total, .. } => {
                let key = format!("pull {digest}");
                let label = format!("pull {}", digest.short());
                if let Some(pb) = self.bar(&key, &label, *total) {
                    pb.set_position(*done);
                }
                if done >= total {
                    self.finish_bar(&key);
                }
            }
            Event::PushProgress { destination, digest, sent, total } => {
                let key = format!("push {destination} {digest}");
                let label = format!("push {}", digest.short());
                if let Some(pb) = self.bar(&key, &label, *total) {
                    pb.set_position(*sent);
                }
            }
            Event::BlobPushed { destination, digest, .. } => self.finish_bar(&format!("push {destination} {digest}")),
            // A step's last output line that did not end with a newline, tagged, before the
            // step's own closing line.
            Event::StepFinished { id, .. } => {
                if let Some(tag) = platform_tag(&self.state, &env.event) {
                    for stderr in [false, true] {
                        if let Some(rest) = self.partial.remove(&(*id, stderr)).filter(|r| !r.is_empty()) {
                            let line = format!("[{tag}] {rest}\n");
                            let _ = if stderr {
                                std::io::stderr().write_all(line.as_bytes())
                            } else {
                                std::io::stdout().write_all(line.as_bytes())
                            };
                        }
                    }
                }
            }
            _ => {}
        }
        for (level, msg) in lines(&self.state, &env.event) {
            self.line(level, env.ms, &msg);
        }
    }
}

/// The log lines an event makes, at their levels, given the build so far (`state`, which the
/// event has been applied to). In a build for several platforms, whose stages run at the same
/// time, a stage's and its steps' lines say which platform they are for (`[linux/arm64]`, or
/// `[linux/amd64, shared]` for a stage every target shares).
pub fn lines(state: &BuildState, event: &Event) -> Vec<(Level, String)> {
    let mut out = event_lines(state, event);
    if let Some(tag) = platform_tag(state, event) {
        for (_, line) in &mut out {
            *line = format!("[{tag}] {line}");
        }
    }
    out
}

/// Which platform a stage's (or its step's) event is for, in a build for several.
fn platform_tag(state: &BuildState, event: &Event) -> Option<String> {
    if state.platforms.len() < 2 {
        return None;
    }
    let stage = match event {
        Event::StageStarted { stage, .. }
        | Event::BaseResolved { stage, .. }
        | Event::BaseUnpacked { stage, .. }
        | Event::BaseLayerListed { stage, .. }
        | Event::SourceExtracted { stage: Some(stage), .. }
        | Event::StageFinished { stage, .. } => *stage,
        Event::StepStarted { id, .. }
        | Event::StepFinished { id, .. }
        | Event::Output { id, .. }
        | Event::Snapshot { id, .. }
        | Event::FileContents { id, .. }
        | Event::LayerWritten { id, .. }
        | Event::CacheLookup { id, .. }
        | Event::CacheStored { id, .. }
        | Event::ShellStarted { id, .. }
        | Event::ShellFinished { id, .. }
        | Event::ShellResolved { id, .. }
        | Event::Paused { id, .. }
        | Event::Resumed { id, .. } => id.stage,
        _ => return None,
    };
    let s = state.stage(stage)?;
    let on = s.platform.as_deref()?;
    Some(if s.targets.len() > 1 {
        format!("{on}, shared")
    } else {
        s.targets.first().map_or(on, String::as_str).to_string()
    })
}

fn event_lines(state: &BuildState, event: &Event) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    let mut say = |level: Level, msg: &str| out.push((level, msg.to_string()));
    match event {
        Event::BuildStarted {
            dockerfile_path,
            context,
            context_origin,
            destinations,
            platform,
            platforms,
            isolation,
            stages,
            ..
        } => {
            let platform = if platforms.is_empty() { platform.clone() } else { platforms.join(", ") };
            if let Some(o) = context_origin {
                say(Level::Info, &crate::context_arg::describe(o));
            }
            say(Level::Info, &format!("Building {dockerfile_path} (context {context}) for {platform}"));
            say(Level::Info, &format!("RUN isolation: {isolation}"));
            let needed = stages.iter().filter(|s| s.needed).count();
            say(Level::Debug, &format!("{} stage(s), {needed} needed", stages.len()));
            if !destinations.is_empty() {
                say(Level::Debug, &format!("destinations: {}", destinations.join(", ")));
            }
        }
        Event::Warning { message } => say(Level::Warn, message),
        // As BuildKit shortens a finding; `trowel check` shows it with its lines.
        Event::Check { rule, message, line, url, error, .. } => {
            let level = if *error { Level::Error } else { Level::Warn };
            say(level, &format!("{rule}: {message} (line {line})"));
            if let Some(u) = url {
                say(Level::Debug, &format!("{rule}: {u}"));
            }
        }
        Event::StageStarted { stage, name, base } => {
            let n = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            // Its number in the Dockerfile (a build for several platforms numbers instances).
            let stage = state.stage(*stage).map_or(*stage, |s| s.number());
            say(Level::Info, &format!("Stage {stage}{n}: FROM {base}"));
        }
        Event::BaseResolved { source, layers, .. } => match source {
            BaseSource::Registry { reference, manifest_digest, .. } => {
                say(Level::Info, &format!("Retrieved image {reference}@{manifest_digest} ({} layers)", layers.len()))
            }
            BaseSource::CacheDir { reference, manifest_digest } => {
                say(Level::Info, &format!("Found {reference}@{manifest_digest} in the local cache directory"))
            }
            BaseSource::Stage { index } => say(Level::Info, &format!("Base is stage {index}")),
            BaseSource::Scratch => say(Level::Debug, "Base is scratch"),
        },
        Event::PullProgress { reference, digest, done, total } => {
            if done >= total {
                say(Level::Debug, &format!("Pulled {} from {reference} ({})", digest.short(), bytes(*total)));
            }
        }
        Event::SourceExtracted { stage, image, paths, layers, entries, skipped, bytes: size, passes, duration_ms } => {
            let from = match (stage, image) {
                (Some(s), _) => format!("stage {s}"),
                (None, Some(i)) => i.clone(),
                (None, None) => "an image".to_string(),
            };
            let again = if *passes > 1 { format!(", layers read {passes} times") } else { String::new() };
            say(
                Level::Info,
                &format!(
                    "Extracted {} from {from}'s {layers} layer(s): {entries} entries, {} ({skipped} entries left out{again}) in {duration_ms} ms",
                    paths.join(" "),
                    bytes(*size)
                ),
            )
        }
        Event::BaseUnpacked { layers, entries, bytes: size, duration_ms, from_store, store_unused, .. } => {
            let line = match (from_store, store_unused) {
                // A root mounted from the store unpacked only the layers the store lacked.
                (Some(found), _) => {
                    let now = layers - found.min(layers);
                    let made = if now == 0 {
                        "none unpacked".to_string()
                    } else {
                        format!("{now} unpacked into the store: {entries} entries, {}", bytes(*size))
                    };
                    format!(
                        "Mounted {layers} layer(s) from the unpacked-layer store ({found} there already, {made}) in {duration_ms} ms"
                    )
                }
                (None, Some(why)) => format!(
                    "Unpacked {layers} layer(s): {entries} entries, {} in {duration_ms} ms (unpacked-layer store not used: {why})",
                    bytes(*size)
                ),
                (None, None) => {
                    format!("Unpacked {layers} layer(s): {entries} entries, {} in {duration_ms} ms", bytes(*size))
                }
            };
            say(Level::Info, &line)
        }
        Event::StepStarted { expanded, line, end_line, source, attempt, .. } => {
            if let Some(a) = attempt {
                let how = match &a.edited_from {
                    Some(was) => format!("edited in the debugger (was: {was})"),
                    None => "re-run from the debugger".to_string(),
                };
                say(Level::Warn, &format!("line {line}: attempt {} — {how}", a.number));
            }
            // Heredoc bodies are shown as the Dockerfile has them, not as one escaped line.
            if source.contains("<<") && end_line > line {
                let first = source.lines().next().unwrap_or_default().trim_end();
                say(Level::Info, &format!("{first} … ({} more lines)", end_line - line));
            } else {
                say(Level::Info, expanded);
            }
            say(Level::Debug, &format!("(Dockerfile line {line})"));
        }
        // Shown as they are, not as log lines.
        Event::Output { .. } | Event::PushProgress { .. } => {}
        Event::Snapshot { changes, stats, .. } => say(
            Level::Info,
            &format!(
                "Snapshot: {} changed path(s), {} files walked in {} ms",
                changes.len(),
                stats.files_walked,
                stats.duration_ms
            ),
        ),
        Event::BaseLayerListed { index, digest, changes, .. } => say(
            Level::Debug,
            &format!("Listed base layer {} ({}): {} entries", index + 1, digest.short(), changes.len()),
        ),
        Event::FileContents { files, .. } => {
            say(Level::Debug, &format!("recorded the content of {} changed text file(s)", files.len()))
        }
        Event::LayerWritten { layer, .. } => say(
            Level::Info,
            &format!(
                "Layer {} ({}, {} uncompressed)",
                layer.digest.short(),
                bytes(layer.size),
                bytes(layer.uncompressed_size.unwrap_or(0))
            ),
        ),
        Event::StepFinished { id, status, duration_ms, .. } => {
            let what = match status {
                StepStatus::Built => "done",
                StepStatus::Cached => "cached",
                StepStatus::Metadata => "config only",
                StepStatus::Failed => "failed",
                StepStatus::Skipped => "skipped",
            };
            let paused = state.step(*id).map_or(0, |s| s.paused_ms);
            let paused = if paused > 0 { format!(" (and {paused} ms paused)") } else { String::new() };
            say(Level::Debug, &format!("step {what} in {duration_ms} ms{paused}"));
        }
        Event::CacheLookup { result, key, .. } => match result {
            CacheResult::Hit { layer: Some(l), reference } => {
                // A COPY served from this machine's cache dir, not from the cache repository.
                let local = if reference.starts_with("local:") {
                    " from the local layer store".to_string()
                } else if let Some(r) = reference.strip_prefix("registry-ref:") {
                    // A COPY found by its reference record: the layer of a pushed image, by name.
                    format!(" from the layer in {}", r.split_once('@').map_or(r, |(repo, _)| repo))
                } else {
                    String::new()
                };
                say(Level::Info, &format!("Using cached layer {} ({}){local}", l.digest.short(), bytes(l.size)))
            }
            CacheResult::Hit { layer: None, .. } => say(Level::Info, "Cached (no file changes)"),
            CacheResult::Miss { explanation, compared_with } => {
                let against = compared_with.as_ref().map(|c| format!(" (compared with {})", c.describe()));
                say(Level::Info, &format!("Cache miss: {explanation}{}", against.unwrap_or_default()));
                say(Level::Debug, &format!("cache key {key}"));
            }
            CacheResult::Error { message } => say(Level::Warn, &format!("Cache lookup failed: {message}")),
        },
        Event::CacheStored { reference, .. } => say(Level::Debug, &format!("Cached layer as {reference}")),
        Event::CacheSummary { hits, misses, bytes_reused } => {
            say(Level::Info, &format!("Cache: {hits} hit(s), {misses} miss(es), {} reused", bytes(*bytes_reused)))
        }
        Event::StageFinished { stage, duration_ms, .. } => {
            let stage = state.stage(*stage).map_or(*stage, |s| s.number());
            say(Level::Debug, &format!("Stage {stage} finished in {duration_ms} ms"))
        }
        Event::ImageAssembled { manifest_digest, layers, size, platform, .. } => {
            let on = platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            say(Level::Info, &format!("Image {manifest_digest}{on}: {} layers, {}", layers.len(), bytes(*size)))
        }
        Event::IndexAssembled { digest, manifests, .. } => {
            let platforms: Vec<&str> = manifests.iter().map(|m| m.platform.as_str()).collect();
            say(Level::Info, &format!("Image index {digest}: {}", platforms.join(", ")))
        }
        Event::PushReview { review } => {
            let what = if review.platforms.is_empty() {
                String::new()
            } else {
                let platforms: Vec<&str> = review.platforms.iter().map(|p| p.platform.as_str()).collect();
                format!(" (an index of {})", platforms.join(", "))
            };
            say(
                Level::Info,
                &format!("Push review: {}{what} to {}", review.manifest_digest, review.destinations.join(", ")),
            );
        }
        Event::ShellStarted { argv, interactive, .. } => {
            let how = if *interactive { "interactive shell" } else { "command" };
            say(Level::Info, &format!("Debug {how} in the build root: {}", argv.join(" ")));
        }
        Event::ShellFinished { exit_code, changes, .. } => {
            say(Level::Info, &format!("Shell exited with {exit_code}; it changed {} path(s)", changes.len()))
        }
        Event::ShellResolved { kept, layer, .. } => match (kept, layer) {
            (true, Some(l)) => say(Level::Info, &format!("Kept the shell's changes as layer {}", l.digest.short())),
            (true, None) => say(Level::Info, "Kept the shell's changes (no layer: nothing changed)"),
            (false, _) => say(Level::Info, "Discarded the shell's changes"),
        },
        Event::PushStarted { destination } => say(Level::Info, &format!("Pushing image to {destination}")),
        Event::BlobPushed { digest, action, size, .. } => {
            let a = match action {
                BlobPushAction::Uploaded => "uploaded",
                BlobPushAction::Existed => "already exists",
                BlobPushAction::Mounted => "mounted",
            };
            say(Level::Debug, &format!("{}: {a} ({})", digest.short(), bytes(*size)));
        }
        Event::PushFinished { destination, digest, unchanged, .. } => {
            let repo =
                destination.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(destination.as_str(), |(r, _)| r);
            let note = if *unchanged { " (unchanged: the registry already had it)" } else { "" };
            say(Level::Info, &format!("Pushed {repo}@{digest}{note}"))
        }
        Event::OutputWritten { kind, path } => say(Level::Info, &format!("Wrote {kind} {path}")),
        Event::Paused { line, when, reasons, .. } => {
            let side = match when {
                When::BeforeStep => "before",
                When::AfterStep => "after",
            };
            let why: Vec<&str> = reasons.iter().map(|r| r.message.as_str()).collect();
            say(Level::Info, &format!("Paused {side} line {line}: {}", why.join(", ")));
        }
        Event::Resumed { action, paused_ms, .. } => {
            let how = match action {
                ResumeAction::Continue => "continuing".to_string(),
                ResumeAction::Step => "stepping".to_string(),
                ResumeAction::RunTo { line } => format!("running to line {line}"),
                ResumeAction::Abort { reason } => format!("aborting: {reason}"),
                ResumeAction::Retry { edited: None } => "re-running the failed step".to_string(),
                ResumeAction::Retry { edited: Some(text) } => format!("running the failed step edited: {text}"),
            };
            say(Level::Info, &format!("Resumed after {:.1}s, {how}", *paused_ms as f64 / 1000.0));
        }
        Event::Breakpoints { set } if set.is_empty() => say(Level::Info, "Breakpoints: none"),
        Event::Breakpoints { set } => say(Level::Info, &format!("Breakpoints: {}", set.join(", "))),
        Event::PushDecided { approved: true, .. } => say(Level::Info, "Push approved"),
        Event::PushDecided { approved: false, reason } => {
            say(Level::Warn, &format!("Push refused{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()))
        }
        // Said as the state words it, so the log and the summary agree.
        Event::Redacted { .. } => {
            if let Some(w) = state.warnings.last() {
                say(Level::Warn, w);
            }
        }
        Event::BuildFailed { error, .. } => say(Level::Error, &format!("error building image: {error}")),
        Event::BuildFinished { duration_ms, digest, .. } => {
            let d = digest.as_ref().map(|d| format!(" {d}")).unwrap_or_default();
            let written = &state.written_layers;
            let paused = match state.paused_ms() {
                0 => String::new(),
                p => format!("; {:.1}s of it paused in the debugger", p as f64 / 1000.0),
            };
            say(
                Level::Info,
                &format!(
                    "Built{d} in {:.1}s ({} new layer(s), {}{paused})",
                    *duration_ms as f64 / 1000.0,
                    written.len(),
                    bytes(written.iter().map(|l| l.size).sum())
                ),
            );
            // The findings again, where a long log ends (as `docker build` sums them up).
            if !state.checks.is_empty() {
                let n = state.checks.len();
                say(Level::Warn, &format!("{n} build check warning{} found:", if n == 1 { "" } else { "s" }));
                for c in &state.checks {
                    say(Level::Warn, &format!(" - {}", c.short()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies each event (one JSON line each) and returns what the last one prints.
    fn last_lines(state: &mut BuildState, events: &[&str]) -> Vec<(Level, String)> {
        let mut said = Vec::new();
        for e in events {
            let env: Envelope = serde_json::from_str(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            state.apply(&env);
            said = lines(state, &env.event);
        }
        said
    }

    const STARTED: &str = r#"{"seq":0,"ms":0,"event":"build_started","version":"0.1.0","dockerfile_path":"Dockerfile","dockerfile_text":"FROM busybox\nRUN make\n","context":".","target":null,"destinations":[],"platform":"linux/amd64","isolation":"chroot","stages":[{"index":0,"name":null,"base":"busybox","needed":true,"steps":[{"id":{"stage":0,"step":1},"line":2,"end_line":2,"keyword":"RUN","source":"RUN make","onbuild":false}]}]}"#;

    #[test]
    fn pauses_and_the_push_gate() {
        let mut s = BuildState::default();
        let paused = r#"{"seq":1,"ms":5,"event":"paused","id":{"stage":0,"step":1},"line":2,"when":"before_step","reasons":[{"breakpoint":"2","message":"breakpoint at line 2"}]}"#;
        assert_eq!(
            last_lines(&mut s, &[STARTED, paused]),
            [(Level::Info, "Paused before line 2: breakpoint at line 2".to_string())]
        );
        let resumed = r#"{"seq":2,"ms":2005,"event":"resumed","id":{"stage":0,"step":1},"action":{"kind":"run_to","line":9},"paused_ms":2000}"#;
        assert_eq!(
            last_lines(&mut s, &[resumed]),
            [(Level::Info, "Resumed after 2.0s, running to line 9".to_string())]
        );
        let refused = r#"{"seq":3,"ms":2006,"event":"push_decided","approved":false,"reason":"not today"}"#;
        assert_eq!(last_lines(&mut s, &[refused]), [(Level::Warn, "Push refused: not today".to_string())]);
        let withheld =
            r#"{"seq":4,"ms":2007,"event":"redacted","withheld":"layer_written","reason":"a secret in a digest"}"#;
        assert_eq!(
            last_lines(&mut s, &[withheld]),
            [(Level::Warn, "a layer_written event was withheld: a secret in a digest".to_string())]
        );
    }

    #[test]
    fn the_closing_line_sums_up_the_build() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let layer = |c: char, size: u64| {
            format!(
                r#"{{"digest":"{}","diff_id":null,"size":{size},"uncompressed_size":null,"media_type":"m","step":{{"stage":0,"step":1}}}}"#,
                digest(c)
            )
        };
        let mut s = BuildState::default();
        let events = [
            STARTED.to_string(),
            r#"{"seq":1,"ms":1,"event":"step_started","id":{"stage":0,"step":1},"line":2,"end_line":2,"keyword":"RUN","source":"RUN make","expanded":"RUN make"}"#.to_string(),
            // A cached layer is reused, not new.
            format!(r#"{{"seq":2,"ms":2,"event":"cache_lookup","id":{{"stage":0,"step":1}},"key":"k","components":{{"version":1,"platform":"p","layer_format":"gzip","parent":"","instruction":"RUN make","vars":{{}},"line":2}},"result":{{"kind":"hit","reference":"r","layer":{}}}}}"#, layer('c', 9000)),
            format!(r#"{{"seq":3,"ms":3,"event":"layer_written","id":{{"stage":0,"step":1}},"layer":{},"entries":1,"duration_ms":1}}"#, layer('a', 1500)),
            r#"{"seq":4,"ms":3000,"event":"step_finished","id":{"stage":0,"step":1},"status":"built","duration_ms":500,"paused_ms":2500,"layer":null,"exit_code":null}"#.to_string(),
        ];
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        assert_eq!(
            last_lines(&mut s, &events),
            [(Level::Debug, "step done in 500 ms (and 2500 ms paused)".to_string())]
        );
        let finished = format!(
            r#"{{"seq":5,"ms":3100,"event":"build_finished","duration_ms":3100,"digest":"{}","pushed":[]}}"#,
            digest('d')
        );
        assert_eq!(
            last_lines(&mut s, &[&finished]),
            [(
                Level::Info,
                format!("Built {} in 3.1s (1 new layer(s), 1.5 kB; 2.5s of it paused in the debugger)", digest('d'))
            )]
        );
    }

    #[test]
    fn check_findings_as_they_come_and_where_the_log_ends() {
        let mut s = BuildState::default();
        let warning = r#"{"seq":1,"ms":0,"event":"check","rule":"JSONArgsRecommended","description":"d","url":"https://docs.docker.com/go/dockerfile/rule/json-args-recommended/","message":"JSON arguments recommended for CMD to prevent unintended behavior related to OS signals","line":2,"end_line":2}"#;
        assert_eq!(
            last_lines(&mut s, &[STARTED, warning]),
            [
                (
                    Level::Warn,
                    "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)".to_string()
                ),
                (Level::Debug, "JSONArgsRecommended: https://docs.docker.com/go/dockerfile/rule/json-args-recommended/".to_string()),
            ]
        );
        let error = r#"{"seq":2,"ms":0,"event":"check","rule":"InvalidBaseImagePlatform","description":"d","message":"m","line":1,"end_line":1,"error":true}"#;
        assert_eq!(last_lines(&mut s, &[error]), [(Level::Error, "InvalidBaseImagePlatform: m (line 1)".to_string())]);
        let finished = r#"{"seq":3,"ms":9,"event":"build_finished","duration_ms":9,"digest":null,"pushed":[]}"#;
        let said = last_lines(&mut s, &[finished]);
        assert_eq!(
            said[1..],
            [
                (Level::Warn, "2 build check warnings found:".to_string()),
                (Level::Warn, " - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 2)".to_string()),
                (Level::Warn, " - InvalidBaseImagePlatform: m (line 1)".to_string()),
            ]
        );
    }
}
