//! `trowel replay FILE --summary`: a plain-text post-mortem of a recorded build, for CI logs.
//!
//! It lists every step with its line, status, time, layer size and cache result, then the
//! failure (with the failing step's last output lines) or the image and where it went. A trace
//! that stops mid-build (the build was killed) says so and shows where it stopped.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::trace::Header;
use trowel_events::{CacheResult, Envelope, Event, StepId, StepStatus};

/// Output lines kept per step for the failure report.
const TAIL_LINES: usize = 20;

#[derive(Default)]
struct Step {
    line: usize,
    text: String,
    status: Option<StepStatus>,
    ms: Option<u64>,
    layer: Option<u64>,
    cache: Option<String>,
    output: String,
    started_at: u64,
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// Renders the summary of a trace.
pub fn summarize(header: &Header, events: &[Envelope]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trowel trace (format {}, trowel {}, started {})",
        header.trowel_trace, header.trowel_version, header.started
    );
    let mut steps: BTreeMap<StepId, Step> = BTreeMap::new();
    let mut order: Vec<StepId> = Vec::new();
    let mut stage_names: BTreeMap<usize, String> = BTreeMap::new();
    let mut layer_sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut failure: Option<(String, Option<StepId>)> = None;
    let mut finished: Option<u64> = None;
    let mut image: Option<String> = None;
    let mut pushed: Vec<String> = Vec::new();
    let mut cache_summary: Option<String> = None;
    let mut warnings: Vec<String> = Vec::new();
    let mut dockerfile = String::new();
    let mut last_running: Option<StepId> = None;
    for e in events {
        match &e.event {
            Event::BuildStarted { dockerfile_path, platform, destinations, stages, .. } => {
                dockerfile = dockerfile_path.clone();
                let _ = writeln!(
                    out,
                    "Dockerfile: {dockerfile_path} ({} stage(s)), platform {platform}{}",
                    stages.len(),
                    if destinations.is_empty() {
                        String::new()
                    } else {
                        format!(", destinations: {}", destinations.join(", "))
                    }
                );
                for s in stages {
                    let name = s.name.clone().unwrap_or_else(|| s.index.to_string());
                    stage_names.insert(
                        s.index,
                        format!(
                            "Stage {name}: FROM {}{}",
                            s.base,
                            if s.needed { "" } else { " (not needed, skipped)" }
                        ),
                    );
                }
            }
            Event::StepStarted { id, line, source, .. } => {
                let s = steps.entry(*id).or_default();
                s.line = *line;
                s.text = source.lines().next().unwrap_or_default().trim().to_string();
                s.started_at = e.ms;
                order.push(*id);
                last_running = Some(*id);
            }
            Event::StepFinished { id, status, duration_ms, .. } => {
                let s = steps.entry(*id).or_default();
                s.status = Some(*status);
                s.ms = Some(*duration_ms);
                if last_running == Some(*id) {
                    last_running = None;
                }
            }
            Event::LayerWritten { id, layer, .. } => {
                steps.entry(*id).or_default().layer = Some(layer.size);
                layer_sizes.insert(layer.digest.to_string(), layer.size);
            }
            Event::CacheLookup { id, result, .. } => {
                let s = steps.entry(*id).or_default();
                s.cache = Some(match result {
                    CacheResult::Hit { layer, .. } => {
                        if let Some(l) = layer {
                            s.layer = Some(l.size);
                        }
                        "cache hit".to_string()
                    }
                    CacheResult::Miss { explanation } => format!("cache miss: {explanation}"),
                    CacheResult::Error { message } => format!("cache error: {message}"),
                });
            }
            Event::Output { id, data, .. } => steps.entry(*id).or_default().output.push_str(data),
            Event::CacheSummary { hits, misses, bytes_reused } => {
                cache_summary = Some(format!(
                    "Cache: {hits} hit(s), {misses} miss(es), {} reused",
                    crate::units::bytes(*bytes_reused)
                ));
            }
            Event::ImageAssembled { manifest_digest, layers, size, .. } => {
                image = Some(format!(
                    "Image: {manifest_digest}, {} layer(s), {}",
                    layers.len(),
                    crate::units::bytes(*size)
                ));
            }
            Event::PushFinished { destination, .. } => pushed.push(destination.clone()),
            Event::Warning { message } => warnings.push(message.clone()),
            Event::BuildFailed { error, step, .. } => failure = Some((error.clone(), *step)),
            Event::BuildFinished { duration_ms, .. } => finished = Some(*duration_ms),
            _ => {}
        }
    }
    let mut current_stage = None;
    for id in &order {
        let s = &steps[id];
        if current_stage != Some(id.stage) {
            current_stage = Some(id.stage);
            let _ = writeln!(
                out,
                "{}",
                stage_names.get(&id.stage).cloned().unwrap_or_else(|| format!("Stage {}", id.stage))
            );
        }
        let status = match s.status {
            Some(StepStatus::Built) => "built",
            Some(StepStatus::Cached) => "cached",
            Some(StepStatus::Metadata) => "config",
            Some(StepStatus::Failed) => "FAILED",
            Some(StepStatus::Skipped) => "skipped",
            None => "running",
        };
        let mut line = format!(
            "  line {:<4} {:<7} {:>6}  {:<48}",
            s.line,
            status,
            s.ms.map(secs).unwrap_or_else(|| "-".into()),
            truncate(&s.text, 48)
        );
        if let Some(l) = s.layer {
            let _ = write!(line, "  layer {}", crate::units::bytes(l));
        }
        if let Some(c) = &s.cache {
            let _ = write!(line, "  {c}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for w in &warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(c) = &cache_summary {
        let _ = writeln!(out, "{c}");
    }
    let failed_step = order.iter().rev().find(|id| steps[id].status == Some(StepStatus::Failed)).copied();
    match (&failure, finished) {
        (Some((error, _)), _) => {
            let _ = writeln!(out, "FAILED: {error}");
            if let Some(id) = failed_step {
                tail(&mut out, &steps[&id].output);
            }
        }
        (None, Some(ms)) => {
            if let Some(i) = &image {
                let _ = writeln!(out, "{i}");
            }
            if pushed.is_empty() {
                let _ = writeln!(out, "Not pushed");
            } else {
                let _ = writeln!(out, "Pushed to {}", pushed.join(", "));
            }
            let _ = writeln!(out, "Built in {}", secs(ms));
        }
        (None, None) => {
            let last_ms = events.last().map(|e| e.ms).unwrap_or(0);
            let _ =
                writeln!(out, "INTERRUPTED: the trace ends at {} without the build finishing (killed?)", secs(last_ms));
            if let Some(id) = last_running {
                let s = &steps[&id];
                let _ = writeln!(
                    out,
                    "It was running {dockerfile}:{}: {} (started at {})",
                    s.line,
                    s.text,
                    secs(s.started_at)
                );
                tail(&mut out, &s.output);
            }
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

fn tail(out: &mut String, output: &str) {
    let lines: Vec<&str> = output.lines().collect();
    if lines.is_empty() {
        return;
    }
    let skip = lines.len().saturating_sub(TAIL_LINES);
    let _ = writeln!(out, "  output{}:", if skip > 0 { format!(" (last {TAIL_LINES} lines)") } else { String::new() });
    for l in &lines[skip..] {
        let _ = writeln!(out, "  | {l}");
    }
}
