//! What each event says in the plain log: the wording of every line, at its level, kept apart
//! from the printer (terminal, progress bars) so it can be read, and tested, as one table of
//! events to sentences.

use super::Level;
use crate::units::bytes;
use trowel_events::state::BuildState;
use trowel_events::{
    BaseSource, BlobPushAction, CacheResult, Event, LayerSummary, ResumeAction, RootIndex, StepStatus, When,
};

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
pub(super) fn platform_tag(state: &BuildState, event: &Event) -> Option<String> {
    if state.platforms.len() < 2 {
        return None;
    }
    let stage = match event {
        Event::StageStarted { stage, .. }
        | Event::BaseResolved { stage, .. }
        | Event::BaseUnpacked { stage, .. }
        | Event::BaseLayerListed { stage, .. }
        | Event::SourceExtracted { stage: Some(stage), .. }
        | Event::SourceUnpacked { stage: Some(stage), .. }
        | Event::StageFinished { stage, .. } => *stage,
        Event::StepStarted { id, .. }
        | Event::DeferredRun { id, .. }
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
    stage_platform(state, stage)
}

/// Which platform stage `stage` is built for, in a build for several (`linux/arm64`, or
/// `linux/amd64, shared` for a stage every target shares).
fn stage_platform(state: &BuildState, stage: usize) -> Option<String> {
    if state.platforms.len() < 2 {
        return None;
    }
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
            BaseSource::Registry { reference, manifest_digest, cache_dir_miss, .. } => {
                let why = cache_dir_miss.as_ref().map(|w| format!("; not from the cache directory: {w}"));
                let n = layers.len();
                say(
                    Level::Info,
                    &format!("Retrieved image {reference}@{manifest_digest} ({n} layers{})", why.unwrap_or_default()),
                )
            }
            BaseSource::CacheDir { reference, manifest_digest } => {
                say(Level::Info, &format!("Found {reference}@{manifest_digest} in the local cache directory"))
            }
            // Its number in the Dockerfile, not the instance's (a build for several platforms
            // numbers one instance of a stage per platform).
            BaseSource::Stage { index } => {
                say(Level::Info, &format!("Base is stage {}", state.stage(*index).map_or(*index, |s| s.number())))
            }
            BaseSource::Scratch => say(Level::Debug, "Base is scratch"),
        },
        Event::PullProgress { reference, digest, done, total } => {
            if done >= total {
                say(Level::Debug, &format!("Pulled {} from {reference} ({})", digest.short(), bytes(*total)));
            }
        }
        Event::SourceExtracted {
            stage,
            image,
            paths,
            layers,
            entries,
            skipped,
            bytes: size,
            passes,
            duration_ms,
            ..
        } => {
            let from = source_name(*stage, image.as_deref());
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
        Event::BaseUnpacked { layers, entries, bytes: size, duration_ms, from_store, store_unused, index, .. } => {
            let made = RootMade { layers: *layers, entries: *entries, bytes: *size, duration_ms: *duration_ms };
            say(Level::Info, &made.line("", *from_store, store_unused.as_deref()));
            if let Some(i) = index {
                say(Level::Debug, &index_line(i));
            }
        }
        Event::SourceUnpacked {
            stage,
            image,
            why,
            layers,
            entries,
            bytes: size,
            duration_ms,
            from_store,
            store_unused,
            index,
            ..
        } => {
            let from = source_name(*stage, image.as_deref());
            let made = RootMade { layers: *layers, entries: *entries, bytes: *size, duration_ms: *duration_ms };
            let line = made.line(&format!("{from}'s "), *from_store, store_unused.as_deref());
            say(Level::Info, &format!("{line}, to read from ({why})"));
            if let Some(i) = index {
                say(Level::Debug, &index_line(i));
            }
        }
        Event::DeferredRun { id, for_step, duration_ms, reading } => {
            let step =
                |id: &trowel_events::StepId| state.step(*id).map(|s| format!("line {} ({})", s.line, s.ran_line()));
            // The line is tagged with the deferred step's platform; the stage that needed it may
            // be another platform's instance (a shared stage read by each target's).
            let stage = |idx: usize| {
                let name = match state.stage(idx) {
                    Some(v) => format!("stage {}", v.name.clone().unwrap_or_else(|| v.number().to_string())),
                    None => format!("stage {idx}"),
                };
                match stage_platform(state, idx) {
                    Some(on) if Some(&on) != stage_platform(state, id.stage).as_ref() => format!("{name} [{on}]"),
                    _ => name,
                }
            };
            let needs = match reading {
                Some(p) => format!("reads the files of {}", stage(*p)),
                None => "needs the root".to_string(),
            };
            say(
                Level::Info,
                &format!(
                    "{} was deferred; it runs now: {} of {} {needs} ({duration_ms} ms, in that step's time)",
                    step(id).as_deref().unwrap_or("a step"),
                    step(for_step).as_deref().unwrap_or("a later step"),
                    stage(for_step.stage),
                ),
            );
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
        Event::Snapshot { id, changes, stats, .. } => {
            // `--single-snapshot`: the stage's one snapshot, not its last step's.
            let whose = match state.step(*id).and_then(|s| s.stage_snapshot.map(|from| (from, s.line))) {
                Some((from, to)) => format!("Snapshot of the stage (lines {from}-{to}, --single-snapshot)"),
                None => "Snapshot".to_string(),
            };
            say(
                Level::Info,
                &format!(
                    "{whose}: {} changed path(s), {} files walked in {} ms",
                    changes.len() as u64 + stats.unlisted.unwrap_or(0),
                    stats.files_walked,
                    stats.duration_ms
                ),
            )
        }
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
                StepStatus::Deferred => "deferred (not run: nothing needs its layer)",
            };
            let paused = state.step(*id).map_or(0, |s| s.paused_ms);
            let paused = if paused > 0 { format!(" (and {paused} ms paused)") } else { String::new() };
            if *status == StepStatus::Deferred {
                // After its `Cache miss` line: say it did not run, and why.
                say(
                    Level::Info,
                    "Not run: nothing needs its layer (every later step of its stage hit, or was not run either)",
                );
            }
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
        Event::ImageAssembled { manifest_digest, layers, platform, .. } => {
            let on = platform.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
            // The layers' bytes, as the summary and the push review add them up (the event's
            // size also counts the config).
            let size: u64 = layers.iter().map(|l| l.size).sum();
            say(Level::Info, &format!("Image {manifest_digest}{on}: {} layers, {}", layers.len(), bytes(size)))
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
            // The same line built for two platforms can write the same blob twice (a COPY of the
            // same file): one layer, stored and pushed once.
            // (Without the step's line, each step's layer stands alone.)
            let line_of = |l: &LayerSummary| l.step.and_then(|id| state.step(id)).map(|s| s.line).ok_or(l.step);
            let mut seen = std::collections::HashSet::new();
            let written: Vec<&LayerSummary> = state
                .written_layers
                .iter()
                .filter(|l| seen.insert((l.digest.clone(), line_of(l), format!("{:?}", l.shell))))
                .collect();
            let paused = match state.paused_ms() {
                0 => String::new(),
                p => format!("; {:.1}s of it paused in the debugger", p as f64 / 1000.0),
            };
            // A multi-stage build writes layers its image does not hold (a builder stage's):
            // the count says so rather than let them pass for the image's. A layer is the
            // image's when the image credits it to the step that wrote it: a builder's layer can
            // be byte for byte a later stage's (`COPY f /f`, then `COPY --from` of that file),
            // and one blob in the image is not two of this build's layers. (Traces that credit
            // no step in the image are matched by digest alone.)
            let in_image = |l: &&LayerSummary| {
                state.images.iter().any(|i| {
                    i.layers
                        .iter()
                        .any(|x| x.digest == l.digest && (x.step.is_none() || (x.step, x.shell) == (l.step, l.shell)))
                })
            };
            let kept = written.iter().copied().filter(in_image).count();
            let part = match state.images.len() {
                0 => String::new(),
                _ if kept == written.len() => String::new(),
                1 => format!("; {kept} of them in the image"),
                _ => format!("; {kept} of them in the images"),
            };
            say(
                Level::Info,
                &format!(
                    "Built{d} in {:.1}s ({} new layer(s), {}{part}{paused})",
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

/// `stage 1` or the image as written: what a `COPY --from` or a RUN mount read from.
fn source_name(stage: Option<usize>, image: Option<&str>) -> String {
    match (stage, image) {
        (Some(s), _) => format!("stage {s}"),
        (None, Some(i)) => i.to_string(),
        (None, None) => "an image".to_string(),
    }
}

/// A root just made: what `base_unpacked` and `source_unpacked` say of it.
struct RootMade {
    layers: usize,
    entries: u64,
    bytes: u64,
    duration_ms: u64,
}

/// How a root mounted from the store got its first snapshot index, for `-v debug`: a walk
/// of the root is most of a slow mount.
fn index_line(index: &RootIndex) -> String {
    match index {
        RootIndex::Kept => "Root index: read back as a build before kept it".to_string(),
        RootIndex::Extended { layers, paths } => format!(
            "Root index: the one kept for the layers below the top {layers} brought up to date ({paths} paths looked at)"
        ),
        RootIndex::Walked { paths } => format!("Root index: walked ({paths} paths)"),
    }
}

impl RootMade {
    /// How the root of `whose` layers (`""`, or `"stage 0's "`) was made: mounted from the
    /// unpacked-layer store with `from_store` layers there already, or unpacked (with why the
    /// store was not used).
    fn line(&self, whose: &str, from_store: Option<usize>, store_unused: Option<&str>) -> String {
        let RootMade { layers, entries, bytes: size, duration_ms } = *self;
        match (from_store, store_unused) {
            // A root mounted from the store unpacked only the layers the store lacked.
            (Some(found), _) => {
                let now = layers - found.min(layers);
                let made = if now == 0 {
                    "none unpacked".to_string()
                } else {
                    format!("{now} unpacked into the store: {entries} entries, {}", bytes(size))
                };
                format!(
                    "Mounted {whose}{layers} layer(s) from the unpacked-layer store ({found} there already, {made}) in {duration_ms} ms"
                )
            }
            (None, Some(why)) => format!(
                "Unpacked {whose}{layers} layer(s): {entries} entries, {} in {duration_ms} ms (unpacked-layer store not used: {why})",
                bytes(size)
            ),
            (None, None) => {
                format!("Unpacked {whose}{layers} layer(s): {entries} entries, {} in {duration_ms} ms", bytes(size))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base that is another stage is named by its number in the Dockerfile, not by the
    /// instance a build for several platforms made of it.
    #[test]
    fn a_stage_base_is_its_dockerfile_number() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/traces/platforms.jsonl");
        let (_, events) = crate::trace::read(&path).unwrap();
        let state = BuildState::from_events(&events);
        // Instance 2 is the arm64 instance of the Dockerfile's stage 1.
        assert_eq!(state.stage(2).map(|s| s.number()), Some(1));
        let base = Event::BaseResolved {
            stage: 2,
            source: BaseSource::Stage { index: 2 },
            config_digest: None,
            layers: Vec::new(),
        };
        let said = lines(&state, &base);
        assert!(said.iter().any(|(_, l)| l.ends_with("Base is stage 1")), "{said:?}");
    }
}
