//! The plain-log front end: kaniko-style lines (`INFO[0003] RUN make`) on stderr, RUN output
//! passed through untouched on stdout, and, when stderr is a terminal, progress bars for pulls
//! and pushes.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::units::bytes;
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
    /// Bytes reused from base images vs written, for the summary line.
    layers_built: u64,
    bytes_built: u64,
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
            layers_built: 0,
            bytes_built: 0,
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
        let ms = env.ms;
        match &env.event {
            Event::BuildStarted { dockerfile_path, context, destinations, platform, isolation, stages, .. } => {
                self.line(Level::Info, ms, &format!("Building {dockerfile_path} (context {context}) for {platform}"));
                self.line(Level::Info, ms, &format!("RUN isolation: {isolation}"));
                let needed = stages.iter().filter(|s| s.needed).count();
                self.line(Level::Debug, ms, &format!("{} stage(s), {needed} needed", stages.len()));
                if !destinations.is_empty() {
                    self.line(Level::Debug, ms, &format!("destinations: {}", destinations.join(", ")));
                }
            }
            Event::Warning { message } => self.line(Level::Warn, ms, message),
            Event::StageStarted { stage, name, base } => {
                let n = name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
                self.line(Level::Info, ms, &format!("Stage {stage}{n}: FROM {base}"));
            }
            Event::BaseResolved { source, layers, .. } => match source {
                BaseSource::Registry { reference, manifest_digest, .. } => self.line(
                    Level::Info,
                    ms,
                    &format!("Retrieved image {reference}@{manifest_digest} ({} layers)", layers.len()),
                ),
                BaseSource::CacheDir { reference, manifest_digest } => self.line(
                    Level::Info,
                    ms,
                    &format!("Found {reference}@{manifest_digest} in the local cache directory"),
                ),
                BaseSource::Stage { index } => self.line(Level::Info, ms, &format!("Base is stage {index}")),
                BaseSource::Scratch => self.line(Level::Debug, ms, "Base is scratch"),
            },
            Event::PullProgress { reference, digest, done, total } => {
                let key = format!("pull {digest}");
                let label = format!("pull {}", digest.short());
                if let Some(pb) = self.bar(&key, &label, *total) {
                    pb.set_position(*done);
                }
                if done >= total {
                    self.finish_bar(&key);
                    self.line(
                        Level::Debug,
                        ms,
                        &format!("Pulled {} from {reference} ({})", digest.short(), bytes(*total)),
                    );
                }
            }
            Event::BaseUnpacked { layers, entries, bytes: size, duration_ms, .. } => self.line(
                Level::Info,
                ms,
                &format!("Unpacked {layers} layer(s): {entries} entries, {} in {duration_ms} ms", bytes(*size)),
            ),
            Event::StepStarted { expanded, line, end_line, source, .. } => {
                // Heredoc bodies are shown as the Dockerfile has them, not as one escaped line.
                if source.contains("<<") && end_line > line {
                    let first = source.lines().next().unwrap_or_default().trim_end();
                    self.line(Level::Info, ms, &format!("{first} … ({} more lines)", end_line - line));
                } else {
                    self.line(Level::Info, ms, expanded);
                }
                self.line(Level::Debug, ms, &format!("(Dockerfile line {line})"));
            }
            Event::Output { data, stream, .. } => {
                // RUN output is the user's program talking: pass it through as is.
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
            Event::Snapshot { changes, stats, .. } => self.line(
                Level::Info,
                ms,
                &format!(
                    "Snapshot: {} changed path(s), {} files walked in {} ms",
                    changes.len(),
                    stats.files_walked,
                    stats.duration_ms
                ),
            ),
            Event::FileContents { files, .. } => {
                self.line(Level::Debug, ms, &format!("recorded the content of {} changed text file(s)", files.len()))
            }
            Event::LayerWritten { layer, .. } => {
                self.layers_built += 1;
                self.bytes_built += layer.size;
                self.line(
                    Level::Info,
                    ms,
                    &format!(
                        "Layer {} ({}, {} uncompressed)",
                        layer.digest.short(),
                        bytes(layer.size),
                        bytes(layer.uncompressed_size.unwrap_or(0))
                    ),
                )
            }
            Event::StepFinished { status, duration_ms, .. } => {
                let what = match status {
                    StepStatus::Built => "done",
                    StepStatus::Cached => "cached",
                    StepStatus::Metadata => "config only",
                    StepStatus::Failed => "failed",
                    StepStatus::Skipped => "skipped",
                };
                self.line(Level::Debug, ms, &format!("step {what} in {duration_ms} ms"));
            }
            Event::CacheLookup { result, key, .. } => match result {
                CacheResult::Hit { layer: Some(l), .. } => {
                    self.line(Level::Info, ms, &format!("Using cached layer {} ({})", l.digest.short(), bytes(l.size)))
                }
                CacheResult::Hit { layer: None, .. } => self.line(Level::Info, ms, "Cached (no file changes)"),
                CacheResult::Miss { explanation } => {
                    self.line(Level::Info, ms, &format!("Cache miss: {explanation}"));
                    self.line(Level::Debug, ms, &format!("cache key {key}"));
                }
                CacheResult::Error { message } => {
                    self.line(Level::Warn, ms, &format!("Cache lookup failed: {message}"))
                }
            },
            Event::CacheStored { reference, .. } => {
                self.line(Level::Debug, ms, &format!("Cached layer as {reference}"))
            }
            Event::CacheSummary { hits, misses, bytes_reused } => self.line(
                Level::Info,
                ms,
                &format!("Cache: {hits} hit(s), {misses} miss(es), {} reused", bytes(*bytes_reused)),
            ),
            Event::StageFinished { stage, duration_ms, .. } => {
                self.line(Level::Debug, ms, &format!("Stage {stage} finished in {duration_ms} ms"))
            }
            Event::ImageAssembled { manifest_digest, layers, size, .. } => self.line(
                Level::Info,
                ms,
                &format!("Image {manifest_digest}: {} layers, {}", layers.len(), bytes(*size)),
            ),
            Event::PushReview { review } => {
                self.line(
                    Level::Info,
                    ms,
                    &format!("Push review: {} to {}", review.manifest_digest, review.destinations.join(", ")),
                );
            }
            Event::ShellStarted { argv, interactive, .. } => {
                let how = if *interactive { "interactive shell" } else { "command" };
                self.line(Level::Info, ms, &format!("Debug {how} in the build root: {}", argv.join(" ")));
            }
            Event::ShellFinished { exit_code, changes, .. } => self.line(
                Level::Info,
                ms,
                &format!("Shell exited with {exit_code}; it changed {} path(s)", changes.len()),
            ),
            Event::ShellResolved { kept, layer, .. } => match (kept, layer) {
                (true, Some(l)) => {
                    self.line(Level::Info, ms, &format!("Kept the shell's changes as layer {}", l.digest.short()))
                }
                (true, None) => self.line(Level::Info, ms, "Kept the shell's changes (no layer: nothing changed)"),
                (false, _) => self.line(Level::Info, ms, "Discarded the shell's changes"),
            },
            Event::PushStarted { destination } => {
                self.line(Level::Info, ms, &format!("Pushing image to {destination}"))
            }
            Event::PushProgress { destination, digest, sent, total } => {
                let key = format!("push {destination} {digest}");
                let label = format!("push {}", digest.short());
                if let Some(pb) = self.bar(&key, &label, *total) {
                    pb.set_position(*sent);
                }
            }
            Event::BlobPushed { destination, digest, action, size } => {
                self.finish_bar(&format!("push {destination} {digest}"));
                let a = match action {
                    BlobPushAction::Uploaded => "uploaded",
                    BlobPushAction::Existed => "already exists",
                    BlobPushAction::Mounted => "mounted",
                };
                self.line(Level::Debug, ms, &format!("{}: {a} ({})", digest.short(), bytes(*size)));
            }
            Event::PushFinished { destination, digest, unchanged, .. } => {
                let repo = destination
                    .rsplit_once(':')
                    .filter(|(_, t)| !t.contains('/'))
                    .map_or(destination.as_str(), |(r, _)| r);
                let note = if *unchanged { " (unchanged: the registry already had it)" } else { "" };
                self.line(Level::Info, ms, &format!("Pushed {repo}@{digest}{note}"))
            }
            Event::OutputWritten { kind, path } => self.line(Level::Info, ms, &format!("Wrote {kind} {path}")),
            Event::Paused { line, when, reasons, .. } => {
                let side = match when {
                    When::BeforeStep => "before",
                    When::AfterStep => "after",
                };
                let why: Vec<&str> = reasons.iter().map(|r| r.message.as_str()).collect();
                self.line(Level::Info, ms, &format!("Paused {side} line {line}: {}", why.join(", ")));
            }
            Event::Resumed { action, paused_ms, .. } => {
                let how = match action {
                    ResumeAction::Continue => "continuing".to_string(),
                    ResumeAction::Step => "stepping".to_string(),
                    ResumeAction::RunTo { line } => format!("running to line {line}"),
                    ResumeAction::Abort { reason } => format!("aborting: {reason}"),
                };
                self.line(Level::Info, ms, &format!("Resumed after {:.1}s, {how}", *paused_ms as f64 / 1000.0));
            }
            Event::PushDecided { approved: true, .. } => self.line(Level::Info, ms, "Push approved"),
            Event::PushDecided { approved: false, reason } => self.line(
                Level::Warn,
                ms,
                &format!("Push refused{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()),
            ),
            Event::Redacted { withheld, reason } => {
                self.line(Level::Warn, ms, &format!("a {withheld} event was withheld: {reason}"))
            }
            Event::BuildFailed { error, .. } => self.line(Level::Error, ms, &format!("error building image: {error}")),
            Event::BuildFinished { duration_ms, digest, .. } => {
                let d = digest.as_ref().map(|d| format!(" {d}")).unwrap_or_default();
                self.line(
                    Level::Info,
                    ms,
                    &format!(
                        "Built{d} in {:.1}s ({} new layer(s), {})",
                        *duration_ms as f64 / 1000.0,
                        self.layers_built,
                        bytes(self.bytes_built)
                    ),
                );
            }
        }
    }
}
