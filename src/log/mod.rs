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

use trowel_events::state::BuildState;
use trowel_events::{Envelope, Event, EventSink, OutputStream};

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

mod lines;

pub use lines::lines;
use lines::platform_tag;

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
    fn a_single_snapshot_is_logged_as_the_stages() {
        let started = STARTED.replace(r#""isolation":"chroot","#, r#""isolation":"chroot","single_snapshot":true,"#);
        let snapshot = r#"{"seq":1,"ms":5,"event":"snapshot","id":{"stage":0,"step":1},"changes":[],"stats":{"files_walked":3,"bytes_hashed":0,"duration_ms":1}}"#;
        let said = last_lines(&mut BuildState::default(), &[&started, snapshot]);
        assert_eq!(
            said[0].1,
            "Snapshot of the stage (lines 2-2, --single-snapshot): 0 changed path(s), 3 files walked in 1 ms"
        );
        let said = last_lines(&mut BuildState::default(), &[STARTED, snapshot]);
        assert_eq!(said[0].1, "Snapshot: 0 changed path(s), 3 files walked in 1 ms");
    }

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

    /// A builder stage's layers are written but not in the image: the closing line counts
    /// them and says how many the image holds, so they do not pass for the image's own.
    #[test]
    fn the_closing_line_tells_the_image_s_layers_from_a_builder_s() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let layer = |c: char, size: u64, stage: usize| {
            format!(
                r#"{{"digest":"{}","diff_id":null,"size":{size},"uncompressed_size":null,"media_type":"m","step":{{"stage":{stage},"step":1}}}}"#,
                digest(c)
            )
        };
        let written = |seq: u32, c: char, size: u64, stage: usize| {
            format!(
                r#"{{"seq":{seq},"ms":{seq},"event":"layer_written","id":{{"stage":{stage},"step":1}},"layer":{},"entries":1,"duration_ms":1}}"#,
                layer(c, size, stage)
            )
        };
        let image = |layers: &[String]| {
            format!(
                r#"{{"seq":4,"ms":4,"event":"image_assembled","manifest_digest":"{}","config_digest":"{}","media_type":"m","size":1,"layers":[{}],"config":{{}},"manifest":{{}}}}"#,
                digest('d'),
                digest('e'),
                layers.join(",")
            )
        };
        let finished = format!(
            r#"{{"seq":5,"ms":1200,"event":"build_finished","duration_ms":1200,"digest":"{}","pushed":[]}}"#,
            digest('d')
        );
        let (builder, fin) = (written(1, 'a', 1000, 0), written(2, 'b', 500, 1));
        // The base's layer and the final stage's; the builder's layer is not in the image.
        let assembled = image(&[layer('f', 9000, 0).replace(r#"{"stage":0,"step":1}"#, "null"), layer('b', 500, 1)]);
        let mut s = BuildState::default();
        assert_eq!(
            last_lines(&mut s, &[STARTED, &builder, &fin, &assembled, &finished]),
            [(Level::Info, format!("Built {} in 1.2s (2 new layer(s), 1.5 kB; 1 of them in the image)", digest('d')))]
        );
        // Every layer written is in the image: nothing to add.
        let mut s = BuildState::default();
        let assembled = image(&[layer('a', 1000, 0), layer('b', 500, 1)]);
        assert_eq!(
            last_lines(&mut s, &[STARTED, &builder, &fin, &assembled, &finished]),
            [(Level::Info, format!("Built {} in 1.2s (2 new layer(s), 1.5 kB)", digest('d')))]
        );
        // The builder's layer is byte for byte the final stage's (`COPY f /f`, then `COPY
        // --from` of it): the image holds the blob once, as the final stage's layer.
        let (builder, fin) = (written(1, 'b', 500, 0), written(2, 'b', 500, 1));
        let mut s = BuildState::default();
        let assembled = image(&[layer('f', 9000, 0).replace(r#"{"stage":0,"step":1}"#, "null"), layer('b', 500, 1)]);
        assert_eq!(
            last_lines(&mut s, &[STARTED, &builder, &fin, &assembled, &finished]),
            [(Level::Info, format!("Built {} in 1.2s (2 new layer(s), 1.0 kB; 1 of them in the image)", digest('d')))]
        );
        // The same line built for two platforms wrote the same blob twice: one layer.
        let started = |seq: u32, stage: usize| {
            format!(
                r#"{{"seq":{seq},"ms":{seq},"event":"step_started","id":{{"stage":{stage},"step":1}},"line":2,"end_line":2,"keyword":"RUN","source":"RUN make","expanded":"RUN make"}}"#
            )
        };
        let (one, two) = (written(2, 'b', 500, 0), written(4, 'b', 500, 1));
        let mut s = BuildState::default();
        let assembled = image(&[layer('b', 500, 0)]);
        let lines = last_lines(&mut s, &[STARTED, &started(1, 0), &one, &started(3, 1), &two, &assembled, &finished]);
        assert_eq!(lines, [(Level::Info, format!("Built {} in 1.2s (1 new layer(s), 500 B)", digest('d')))]);
    }

    /// A stage every target shares deferred its COPY, and one target's instance of the stage
    /// built on it ran it: the line is tagged with the shared stage's platform, so the stage
    /// that needed it says which target it is for.
    #[test]
    fn a_deferred_copy_names_the_platform_of_the_stage_that_needed_it() {
        let stage = |index: usize,
                     name: &str,
                     base: &str,
                     dockerfile_stage: usize,
                     on: &str,
                     targets: &str,
                     line: usize,
                     source: &str| {
            format!(
                r#"{{"index":{index},"name":"{name}","base":"{base}","needed":true,"dockerfile_stage":{dockerfile_stage},"platform":"{on}","targets":[{targets}],"steps":[{{"id":{{"stage":{index},"step":1}},"line":{line},"end_line":{line},"keyword":"{}","source":"{source}","onbuild":false}}]}}"#,
                source.split(' ').next().unwrap_or_default()
            )
        };
        let both = r#""linux/amd64","linux/arm64""#;
        let stages = [
            stage(0, "src", "busybox", 0, "linux/amd64", both, 2, "COPY f ./"),
            stage(1, "final", "src", 1, "linux/amd64", r#""linux/amd64""#, 4, "RUN make"),
            stage(2, "final", "src", 1, "linux/arm64", r#""linux/arm64""#, 4, "RUN make"),
        ];
        let started = STARTED
            .replace(
                r#""platform":"linux/amd64","#,
                r#""platform":"linux/amd64","platforms":["linux/amd64","linux/arm64"],"#,
            )
            .replace(
                &STARTED[STARTED.find(r#""stages":"#).unwrap_or_default()..STARTED.len() - 1],
                &format!(r#""stages":[{}]"#, stages.join(",")),
            );
        let deferred = |stage: usize, for_stage: usize| {
            format!(
                r#"{{"seq":1,"ms":5,"event":"deferred_run","id":{{"stage":{stage},"step":1}},"for_step":{{"stage":{for_stage},"step":1}},"duration_ms":3}}"#
            )
        };
        let said = last_lines(&mut BuildState::default(), &[&started, &deferred(0, 2)]);
        assert_eq!(
            said,
            [(
                Level::Info,
                "[linux/amd64, shared] line 2 (COPY f ./) was deferred; it runs now: line 4 (RUN make) of stage final \
                 [linux/arm64] needs the root (3 ms, in that step's time)"
                    .to_string()
            )]
        );
        let said = last_lines(&mut BuildState::default(), &[&started, &deferred(0, 1)]);
        assert!(said[0].1.contains("of stage final [linux/amd64] needs the root"), "{said:?}");
        // The same platform as the line's tag: not said twice.
        let said = last_lines(&mut BuildState::default(), &[&started, &deferred(2, 2)]);
        assert!(said[0].1.starts_with("[linux/arm64] line 4"), "{said:?}");
        assert!(said[0].1.contains("of stage final needs the root"), "{said:?}");
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
