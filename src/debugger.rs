//! The debugger's controller: breakpoints and stepping on top of the engine's checkpoints.
//!
//! [`Debugger`] decides *when* to pause (breakpoints by line, stage, failure, cache miss, layer
//! size, changed-path glob; stepping; run to a line; any of them only on one target platform of
//! a build for several) and hands the pause to a [`Frontend`] —
//! the TUI, a terminal prompt, or a test script — which decides *what* happens next.
//! Breakpoints live behind a shared handle so a front end can change them while the build runs.

use std::sync::{Arc, Mutex};

use globset::{Glob, GlobMatcher};

use trowel_engine::engine::Planned;
use trowel_engine::engine::controller::{Checkpoint, Command, Controller, Decision, ShellChoice};
use trowel_engine::image::manifest::Platform;
use trowel_events::{Change, Detail, PauseReason, PushReview, ResumeAction, When};

/// A reason to pause.
#[derive(Debug, Clone)]
pub enum Breakpoint {
    /// Before the step at this Dockerfile line.
    Line(usize),
    /// When the stage with this name (or index) starts.
    Stage(String),
    /// After a step fails (on by default when debugging).
    Failure,
    /// After a step misses the layer cache.
    CacheMiss,
    /// After a step whose layer is larger than `bytes` (compressed); `text` is the size as the
    /// user wrote it (`10MB`), which is how it is shown.
    LayerLarger { bytes: u64, text: String },
    /// After a step that changed a path matching this glob (`/etc/**`, `**/*.so`).
    Path(PathGlob),
    /// `PLATFORM@BREAKPOINT` (`linux/arm64@12`): the breakpoint, only at steps of stages built
    /// for that target platform (a stage every target shares is one, so it fires there once).
    /// The platform comes first so that nothing after the `@` is taken for it: a path glob may
    /// hold an `@` (`path:**/@types/**`), a platform never holds a `:`.
    OnPlatform { platform: String, inner: Box<Breakpoint> },
}

#[derive(Debug, Clone)]
pub struct PathGlob {
    pub pattern: String,
    matcher: GlobMatcher,
}

impl PathGlob {
    pub fn new(pattern: &str) -> Result<PathGlob, String> {
        let g = Glob::new(pattern).map_err(|e| format!("invalid path glob {pattern:?}: {e}"))?;
        Ok(PathGlob { pattern: pattern.to_string(), matcher: g.compile_matcher() })
    }
    pub fn matches(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

impl Breakpoint {
    /// Parses the CLI forms: `42` (line), `stage:NAME`, `failure`, `cache-miss`,
    /// `size:50MB`, `path:GLOB`, and any of them after `PLATFORM@` (`linux/arm64@42`).
    pub fn parse(s: &str) -> Result<Breakpoint, String> {
        // Text before the first `@` holding no `:` can only be a platform qualifier: every
        // unqualified form with an `@` in it (a path glob) has its `kind:` before it.
        if let Some((p, rest)) = s.split_once('@')
            && !p.contains(':')
        {
            let lower = p.to_ascii_lowercase();
            let bad = |e: String| format!("invalid breakpoint {s:?}: {e} before the @ (e.g. linux/arm64@12)");
            // One word is read as `--platform` reads it (`linux`: this machine's architecture;
            // `arm64`, `aarch64`: for Linux), any of the architecture's variants as below.
            let platform = if lower.contains('/') {
                Platform::parse_exact(&lower).map_err(bad)?
            } else {
                Platform { variant: None, ..Platform::parse(&lower).map_err(bad)? }
            };
            if rest.is_empty() {
                return Err(format!("invalid breakpoint {s:?}: give a breakpoint after the @ (e.g. {platform}@12)"));
            }
            let inner = Breakpoint::parse(rest)?;
            if matches!(inner, Breakpoint::OnPlatform { .. }) {
                return Err(format!("invalid breakpoint {s:?}: name one platform"));
            }
            return Ok(Breakpoint::OnPlatform { platform: platform.to_string(), inner: Box::new(inner) });
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(Breakpoint::Line(n));
        }
        match s.split_once(':') {
            Some(("line", n)) => n.parse().map(Breakpoint::Line).map_err(|_| format!("invalid line {n:?}")),
            Some(("stage", "")) => {
                Err("invalid breakpoint \"stage:\": name a stage (stage:NAME, or its number)".into())
            }
            Some(("stage", n)) => Ok(Breakpoint::Stage(n.to_ascii_lowercase())),
            Some(("size", n)) => {
                parse_size(n).map(|bytes| Breakpoint::LayerLarger { bytes, text: n.trim().to_string() })
            }
            Some(("path", g)) if g.trim().is_empty() => {
                Err("invalid breakpoint \"path:\": give a glob of paths to watch, e.g. path:/etc/** or path:**/*.so"
                    .into())
            }
            Some(("path", g)) => PathGlob::new(g).map(Breakpoint::Path),
            None if s == "failure" => Ok(Breakpoint::Failure),
            None if s == "cache-miss" => Ok(Breakpoint::CacheMiss),
            _ => Err(format!(
                "invalid breakpoint {s:?}: expected a line number, stage:NAME, failure, cache-miss, size:SIZE or path:GLOB (any of them after PLATFORM@ for one platform)"
            )),
        }
    }

    /// The breakpoint without its platform qualifier.
    pub fn base(&self) -> &Breakpoint {
        match self {
            Breakpoint::OnPlatform { inner, .. } => inner,
            other => other,
        }
    }

    /// The target platform it is limited to, if any.
    pub fn platform(&self) -> Option<&str> {
        match self {
            Breakpoint::OnPlatform { platform, .. } => Some(platform),
            _ => None,
        }
    }

    /// Why this breakpoint stops at `at`, if it does.
    fn hit(&self, at: &Checkpoint) -> Option<String> {
        if let Breakpoint::OnPlatform { platform, inner } = self {
            // No targets: a build for one platform, which the check before the build (or the
            // Breaks pane) found to be this one.
            let serves = at.targets.is_empty() || at.targets.iter().any(|t| same_platform(platform, t));
            return if serves { inner.hit(at).map(|why| format!("{why} on {platform}")) } else { None };
        }
        match (self, at.when, &at.report) {
            (Breakpoint::Line(l), When::BeforeStep, _) if *l == at.line => Some(format!("breakpoint at line {l}")),
            (Breakpoint::Stage(name), When::BeforeStep, _) if at.id.step == 0 => {
                let matches = at.stage_name.as_deref() == Some(name.as_str())
                    || name.parse::<usize>().ok() == Some(at.dockerfile_stage.unwrap_or(at.id.stage));
                matches.then(|| format!("stage {name} starts"))
            }
            (Breakpoint::Failure, When::AfterStep, Some(r)) => r.error.as_ref().map(|e| format!("step failed: {e}")),
            (Breakpoint::CacheMiss, When::AfterStep, Some(r)) if r.cache_miss => Some("cache miss".to_string()),
            (Breakpoint::LayerLarger { bytes: max, text }, When::AfterStep, Some(r)) => r
                .layer_size
                .filter(|s| s > max)
                .map(|s| format!("layer of {} is larger than {text}", crate::units::bytes(s))),
            (Breakpoint::Path(g), When::AfterStep, Some(r)) => {
                r.changed_paths.iter().find(|p| g.matches(p)).map(|p| format!("{p} changed (matches {})", g.pattern))
            }
            _ => None,
        }
    }

    /// The breakpoint as it is written on the command line (`12`, `stage:build`, `failure`,
    /// `cache-miss`, `size:10MB`, `path:/etc/**`).
    pub fn spec(&self) -> String {
        match self {
            Breakpoint::Line(l) => l.to_string(),
            Breakpoint::Stage(s) => format!("stage:{s}"),
            Breakpoint::Failure => "failure".into(),
            Breakpoint::CacheMiss => "cache-miss".into(),
            Breakpoint::LayerLarger { text, .. } => format!("size:{text}"),
            Breakpoint::Path(g) => format!("path:{}", g.pattern),
            Breakpoint::OnPlatform { platform, inner } => format!("{platform}@{}", inner.spec()),
        }
    }

    /// Human form for lists and help.
    pub fn describe(&self) -> String {
        match self {
            Breakpoint::Line(l) => format!("line {l}"),
            Breakpoint::Stage(s) => format!("stage {s}"),
            Breakpoint::Failure => "on failure".into(),
            Breakpoint::CacheMiss => "on cache miss".into(),
            Breakpoint::LayerLarger { text, .. } => format!("layer > {text}"),
            Breakpoint::Path(g) => format!("path {}", g.pattern),
            Breakpoint::OnPlatform { platform, inner } => format!("{} on {platform}", inner.describe()),
        }
    }
}

/// Whether two `os/arch[/variant]` name the same platform once normalised (`linux/arm64` is
/// `linux/arm64/v8`, `linux/arm` is `linux/arm/v7`); a platform written without a variant
/// names any variant of its architecture. Not [`Platform::matches`], which asks whether one
/// platform runs the other's code (amd64 runs 386's): a breakpoint for `linux/386` must not
/// stop the amd64 image's steps.
pub fn same_platform(a: &str, b: &str) -> bool {
    match (Platform::parse_exact(a), Platform::parse_exact(b)) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (a.normalized(), b.normalized());
            a.os == b.os
                && a.architecture == b.architecture
                && (a.variant.is_none() || b.variant.is_none() || a.variant == b.variant)
        }
        _ => a == b,
    }
}

/// Refuses breakpoints that can never fire in this build of `planned` for the target
/// `platforms` (every one the build is for, one for most builds), before it starts: a line
/// past the end or holding no instruction, a line or stage the target does not build, a stage
/// that does not exist, a platform the build is not for. A line inside a multi-line instruction
/// becomes the instruction's first line (where the build pauses).
pub fn check_breakpoints(bps: &mut [Breakpoint], planned: &Planned, platforms: &[String]) -> Result<(), String> {
    for b in bps.iter_mut() {
        let spec = b.spec();
        match b {
            Breakpoint::OnPlatform { platform, inner } => {
                if !platforms.iter().any(|p| same_platform(platform, p)) {
                    return Err(format!(
                        "--break {spec}: {platform} is not a platform of this build (it builds {})",
                        platforms.join(", ")
                    ));
                }
                // The inner breakpoint's reason, under the breakpoint as written.
                check_one(inner, planned).map_err(|e| match e.split_once(": ") {
                    Some((_, why)) => format!("--break {spec}: {why}"),
                    None => e,
                })?;
            }
            other => check_one(other, planned)?,
        }
    }
    Ok(())
}

/// [`check_breakpoints`] for one breakpoint without a platform.
fn check_one(b: &mut Breakpoint, planned: &Planned) -> Result<(), String> {
    let df = &planned.df;
    let file = df.path.display();
    let target =
        planned.plan.stages[planned.plan.target].name.clone().unwrap_or_else(|| planned.plan.target.to_string());
    let stage_name =
        |i: usize| df.stages[i].name.clone().map(|n| format!("stage {n}")).unwrap_or_else(|| format!("stage {i}"));
    // Whether Dockerfile stage `i` is built, for some target platform.
    let built = |i: usize| planned.plan.stages.iter().any(|s| s.dockerfile_stage == i && s.needed);
    match b {
        Breakpoint::Line(l) => {
            let lines = df.text.lines().count();
            if *l == 0 || *l > lines {
                return Err(format!("--break {l}: {file} has {lines} lines"));
            }
            let Some(ins) = df.instruction_at_line(*l) else {
                return Err(format!(
                    "--break {l}: line {l} of {file} holds no instruction (a blank line or a comment)"
                ));
            };
            let Some(stage) = df
                .stages
                .iter()
                .find(|s| std::iter::once(&s.from).chain(s.instructions.iter()).any(|i| i.line == ins.line))
            else {
                return Err(format!(
                    "--break {l}: line {l} of {file} is an ARG before the first FROM, not a build step"
                ));
            };
            if !built(stage.index) {
                return Err(format!(
                    "--break {l}: line {l} is in {}, which is not built (the target is {target})",
                    stage_name(stage.index)
                ));
            }
            *l = ins.line;
        }
        Breakpoint::Stage(name) => {
            let index = df
                .stage_by_name(name)
                .map(|s| s.index)
                .or_else(|| name.parse::<usize>().ok().filter(|i| *i < df.stages.len()));
            let Some(i) = index else {
                let names: Vec<String> =
                    df.stages.iter().map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string())).collect();
                return Err(format!(
                    "--break stage:{name}: {file} has no stage {name} (its stages: {})",
                    names.join(", ")
                ));
            };
            if !built(i) {
                return Err(format!("--break stage:{name}: {} is not built (the target is {target})", stage_name(i)));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `123`, `10k`, `50MB`, `1GiB` (decimal and binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("invalid size unit in {s:?}")),
    };
    Ok((n * mult) as u64)
}

/// The breakpoints, shared between the debugger and its front end.
pub type Breakpoints = Arc<Mutex<Vec<Breakpoint>>>;

/// A pause, as a front end sees it.
#[derive(Debug, Clone)]
pub struct Pause<'a> {
    pub at: &'a Checkpoint,
    /// Why the build stopped here (one or more breakpoints, or stepping).
    pub reasons: Vec<String>,
}

/// What the user chose at a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Run until the next breakpoint.
    Continue,
    /// Stop before the next step.
    Step,
    /// Run until the step at this line (or a breakpoint before it).
    RunToLine(usize),
    /// Open a shell here (or run this command), then pause again.
    Shell(Option<Vec<String>>),
    /// Re-run the failed step (as written, or as this instruction); it pauses after it again
    /// if it fails again.
    Retry(Option<String>),
    Abort(String),
}

/// Where the debugger's pauses go.
pub trait Frontend: Send {
    fn paused(&mut self, pause: &Pause<'_>) -> Resume;
    fn shell_changes(&mut self, at: &Checkpoint, changes: &[Change]) -> ShellChoice;
    /// Before the push, if [`Frontend::gates_push`].
    fn review_push(&mut self, review: &PushReview) -> Decision;
    fn gates_push(&self) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Run,
    Step,
    RunTo(usize),
}

pub struct Debugger<F> {
    frontend: F,
    breakpoints: Breakpoints,
    mode: Mode,
    /// The breakpoints as last reported to the engine for the trace (`None`: not yet).
    recorded: Option<Vec<String>>,
}

impl<F: Frontend> Debugger<F> {
    /// A debugger that starts by running (`step_first`: pausing before the first step).
    pub fn new(frontend: F, breakpoints: Vec<Breakpoint>, step_first: bool) -> Debugger<F> {
        Debugger {
            frontend,
            breakpoints: Arc::new(Mutex::new(breakpoints)),
            mode: if step_first { Mode::Step } else { Mode::Run },
            recorded: None,
        }
    }

    pub fn breakpoints(&self) -> Breakpoints {
        self.breakpoints.clone()
    }

    pub fn frontend(&mut self) -> &mut F {
        &mut self.frontend
    }

    /// Why to pause at `at`: stepping, a line reached, every breakpoint that fires.
    fn reasons(&self, at: &Checkpoint) -> Vec<PauseReason> {
        let mut reasons = Vec::new();
        if at.when == When::BeforeStep {
            let stepping = match self.mode {
                Mode::Step => Some("step".to_string()),
                Mode::RunTo(l) if at.line >= l && at.id.step > 0 => Some(format!("reached line {l}")),
                _ => None,
            };
            reasons.extend(stepping.map(|message| PauseReason { breakpoint: None, message }));
        }
        for b in self.breakpoints.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            if let Some(message) = b.hit(at) {
                reasons.push(PauseReason { breakpoint: Some(b.spec()), message });
            }
        }
        reasons
    }
}

impl<F: Frontend> Controller for Debugger<F> {
    fn breakpoints_changed(&mut self) -> Option<Vec<String>> {
        let now: Vec<String> =
            self.breakpoints.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|b| b.spec()).collect();
        if self.recorded.as_ref() == Some(&now) {
            return None;
        }
        self.recorded = Some(now.clone());
        Some(now)
    }

    fn pause_reasons(&mut self, at: &Checkpoint) -> Vec<PauseReason> {
        self.reasons(at)
    }

    fn paused(&mut self, at: &Checkpoint, reasons: &[PauseReason]) -> Command {
        let reasons = reasons.iter().map(|r| r.message.clone()).collect();
        let (mode, action) = match self.frontend.paused(&Pause { at, reasons }) {
            Resume::Continue => (Mode::Run, ResumeAction::Continue),
            Resume::Step => (Mode::Step, ResumeAction::Step),
            Resume::RunToLine(line) => (Mode::RunTo(line), ResumeAction::RunTo { line }),
            Resume::Shell(cmd) => return Command::Shell(cmd),
            Resume::Retry(edited) => return Command::Retry(edited),
            Resume::Abort(reason) => return Command::Resume(ResumeAction::Abort { reason }),
        };
        self.mode = mode;
        Command::Resume(action)
    }

    fn shell_changes(&mut self, at: &Checkpoint, changes: &[Change]) -> ShellChoice {
        self.frontend.shell_changes(at, changes)
    }

    fn review_push(&mut self, review: &PushReview) -> Decision {
        if self.frontend.gates_push() { self.frontend.review_push(review) } else { Decision::Continue }
    }

    fn wants_push_review(&self) -> bool {
        self.frontend.gates_push()
    }

    /// Every step reports the paths it changed (`file_lists`), those served from the cache too
    /// (`cached_listings`): a breakpoint on a changed path reads them.
    fn detail(&self) -> Detail {
        Detail { cached_listings: true, file_lists: true, ..Detail::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_breakpoints() {
        assert!(matches!(Breakpoint::parse("12"), Ok(Breakpoint::Line(12))));
        assert!(matches!(Breakpoint::parse("stage:Builder"), Ok(Breakpoint::Stage(s)) if s == "builder"));
        let Ok(b @ Breakpoint::LayerLarger { bytes: 10_000_000, .. }) = Breakpoint::parse("size:10MB") else {
            panic!()
        };
        assert_eq!((b.spec(), b.describe()), ("size:10MB".to_string(), "layer > 10MB".to_string()));
        assert!(matches!(Breakpoint::parse("size:1KiB"), Ok(Breakpoint::LayerLarger { bytes: 1024, .. })));
        assert!(Breakpoint::parse("path:").unwrap_err().contains("give a glob"));
        assert!(Breakpoint::parse("stage:").unwrap_err().contains("name a stage"));
        assert!(matches!(Breakpoint::parse("cache-miss"), Ok(Breakpoint::CacheMiss)));
        assert!(matches!(Breakpoint::parse("failure"), Ok(Breakpoint::Failure)));
        let Ok(Breakpoint::Path(g)) = Breakpoint::parse("path:/etc/**") else { panic!() };
        assert!(g.matches("/etc/ssl/certs/x.pem") && !g.matches("/usr/etc"));
        assert!(Breakpoint::parse("nonsense").is_err());
    }

    #[test]
    fn a_platform_qualifies_any_breakpoint_and_never_clashes_with_a_glob() {
        let Ok(b @ Breakpoint::OnPlatform { .. }) = Breakpoint::parse("Linux/ARM64@12") else { panic!() };
        assert!(matches!(b.base(), Breakpoint::Line(12)));
        assert_eq!((b.spec(), b.describe()), ("linux/arm64@12".to_string(), "line 12 on linux/arm64".to_string()));
        assert_eq!(b.platform(), Some("linux/arm64"));
        let Ok(b) = Breakpoint::parse("linux/arm/v7@path:/usr/lib/@types/**") else { panic!() };
        let Breakpoint::Path(g) = b.base() else { panic!("{b:?}") };
        assert_eq!((g.pattern.as_str(), b.platform()), ("/usr/lib/@types/**", Some("linux/arm/v7")));
        // An unqualified glob with an `@`: its `path:` comes first, so no platform is read.
        let Ok(Breakpoint::Path(g)) = Breakpoint::parse("path:/node_modules/@types/node") else { panic!() };
        assert_eq!(g.pattern, "/node_modules/@types/node");
        assert!(matches!(
            Breakpoint::parse("linux/amd64@stage:Build").unwrap().base(),
            Breakpoint::Stage(s) if s == "build"
        ));
        // One word, as --platform reads it: an OS is this machine's architecture, an
        // architecture is for Linux.
        let host = Platform { variant: None, ..Platform::host() };
        assert_eq!(Breakpoint::parse("linux@12").unwrap().platform(), Some(host.to_string().as_str()));
        assert_eq!(Breakpoint::parse("AArch64@failure").unwrap().platform(), Some("linux/arm64"));
        assert_eq!(Breakpoint::parse("arm@12").unwrap().platform(), Some("linux/arm"), "any variant");
        assert!(Breakpoint::parse("amd46@12").unwrap_err().contains("did you mean amd64"), "a mistyped platform");
        assert!(Breakpoint::parse("linux/@12").unwrap_err().contains("os/arch"), "a mistyped platform");
        assert!(Breakpoint::parse("linux/arm64@").unwrap_err().contains("after the @"));
        assert!(Breakpoint::parse("linux/arm64@linux/amd64@12").unwrap_err().contains("one platform"));
        assert!(Breakpoint::parse("linux/arm64@nonsense").is_err());
    }

    fn checkpoint(targets: &[&str], when: When) -> Checkpoint {
        Checkpoint {
            when,
            id: trowel_events::StepId { stage: 2, step: 3 },
            line: 7,
            stage_name: None,
            keyword: "RUN".into(),
            source: "RUN make".into(),
            expanded: "RUN make".into(),
            attempt: 1,
            report: None,
            root_dir: None,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            dockerfile_stage: None,
        }
    }

    #[test]
    fn a_stage_breakpoint_by_number_names_the_dockerfile_stage_in_a_build_for_several_platforms() {
        // The arm64 copy of Dockerfile stage 1 is the plan's stage 2.
        let mut at = checkpoint(&["linux/arm64"], When::BeforeStep);
        at.id = trowel_events::StepId { stage: 2, step: 0 };
        at.dockerfile_stage = Some(1);
        assert_eq!(Breakpoint::Stage("1".into()).hit(&at).as_deref(), Some("stage 1 starts"));
        assert_eq!(Breakpoint::Stage("2".into()).hit(&at), None);
        at.dockerfile_stage = None;
        assert_eq!(Breakpoint::Stage("2".into()).hit(&at).as_deref(), Some("stage 2 starts"));
    }

    #[test]
    fn a_qualified_breakpoint_fires_only_where_the_stage_serves_its_platform() {
        let on_arm = Breakpoint::parse("linux/arm64@7").unwrap();
        let anywhere = Breakpoint::parse("7").unwrap();
        let arm = checkpoint(&["linux/arm64"], When::BeforeStep);
        let amd = checkpoint(&["linux/amd64"], When::BeforeStep);
        let shared = checkpoint(&["linux/amd64", "linux/arm64/v8"], When::BeforeStep);
        assert_eq!(on_arm.hit(&arm).as_deref(), Some("breakpoint at line 7 on linux/arm64"));
        assert_eq!(on_arm.hit(&amd), None);
        assert!(on_arm.hit(&shared).is_some(), "a stage both targets share serves arm64 too (v8 is arm64's)");
        assert!(anywhere.hit(&arm).is_some() && anywhere.hit(&amd).is_some());
        // A build for one platform has no targets: the check before it found the platform its.
        assert!(on_arm.hit(&checkpoint(&[], When::BeforeStep)).is_some());
        assert_eq!(on_arm.hit(&checkpoint(&["linux/arm64"], When::AfterStep)), None, "still a line breakpoint");
        assert!(
            Breakpoint::parse("linux/arm/v6@7")
                .unwrap()
                .hit(&checkpoint(&["linux/arm/v7"], When::BeforeStep))
                .is_none()
        );
        // amd64 runs 386's code, but a breakpoint for one never stops the other's steps.
        let on_386 = Breakpoint::parse("linux/386@7").unwrap();
        assert_eq!(on_386.hit(&amd), None);
        assert!(
            Breakpoint::parse("linux/amd64@7").unwrap().hit(&checkpoint(&["linux/386"], When::BeforeStep)).is_none()
        );
        assert!(same_platform("linux/aarch64", "linux/arm64/v8") && same_platform("linux/arm", "linux/arm/v7"));
    }
}
