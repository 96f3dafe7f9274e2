//! Headless debugging on the terminal, for `trowel build`: `--break…` flags pause the build and
//! ask what to do on the controlling terminal, `--shell-on-failure` opens a shell in the failed
//! step's root (what kaniko users asked for in kaniko#1727), a failed RUN, COPY or ADD's pause
//! offers to re-run it (as written or edited, after a shell: fix and retry), and
//! `--require-approval` asks before pushing. Prompts go to `/dev/tty`, so they work while stdout is piped into a CI log; with no
//! terminal at all, trowel never waits for an answer that cannot come.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};

use crate::debugger::{Frontend, Pause, Resume};
use trowel_engine::engine::controller::{Checkpoint, Decision, ShellChoice, logical_line};
use trowel_events::{Change, ChangeKind};
use trowel_events::{PushReview, When};

pub struct TerminalFrontend {
    tty: Option<(BufReader<File>, File)>,
    shell_on_failure: bool,
    require_approval: bool,
    /// A failure (stage, step, attempt) already had its `--shell-on-failure` shell: the next
    /// pause there aborts.
    shelled_failure: Option<(usize, usize, u32)>,
    /// What was answered here that makes the image differ from the Dockerfile as written, by
    /// step (the last answer at a step is the one that ran: a refused edit is asked again).
    deviations: std::collections::BTreeMap<(usize, usize, usize), String>,
}

impl TerminalFrontend {
    pub fn new(shell_on_failure: bool, require_approval: bool) -> TerminalFrontend {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
            .and_then(|r| r.try_clone().ok().map(|w| (BufReader::new(r), w)));
        TerminalFrontend {
            tty,
            shell_on_failure,
            require_approval,
            shelled_failure: None,
            deviations: Default::default(),
        }
    }

    /// Asks a question; `None` without a terminal.
    fn ask(&mut self, question: &str) -> Option<String> {
        self.ask_raw(question).map(|a| a.to_lowercase())
    }

    /// Asks for text, kept as typed (trimmed).
    fn ask_raw(&mut self, question: &str) -> Option<String> {
        let (r, w) = self.tty.as_mut()?;
        let _ = write!(w, "{question}");
        let _ = w.flush();
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_string()),
        }
    }

    fn say(&mut self, text: &str) {
        match self.tty.as_mut() {
            Some((_, w)) => {
                let _ = writeln!(w, "{text}");
            }
            None => eprintln!("{text}"),
        }
    }

    /// An image's layers under review: per destination, how many it has already, and what each
    /// will do (`indent` deeper for a platform of an index).
    fn review_layers(&mut self, destinations: &[String], layers: &[trowel_events::ReviewLayer], indent: &str) {
        for (i, d) in destinations.iter().enumerate() {
            let have = layers.iter().filter(|l| l.present.get(i).copied().flatten() == Some(true)).count();
            let mount = layers
                .iter()
                .filter(|l| l.present.get(i).copied().flatten() != Some(true))
                .filter(|l| l.mount_from.get(i).is_some_and(Option::is_some))
                .count();
            let mount = if mount > 0 { format!(", {mount} to mount from another repository") } else { String::new() };
            self.say(&format!("{indent}  → {d} (already has {have} of {} layers{mount})", layers.len()));
        }
        for l in layers {
            let origin = match (l.step, l.shell) {
                (Some(s), Some(when)) => {
                    format!("debug shell {} step {s}", trowel_events::state::maker::side(when))
                }
                (Some(s), None) => format!("step {s}"),
                (None, _) => "base".into(),
            };
            self.say(&format!("{indent}    {} {:>12} bytes  {origin}", l.digest.short(), l.size));
        }
    }
}

fn is_failure(at: &Checkpoint) -> bool {
    at.when == When::AfterStep && at.report.as_ref().is_some_and(|r| r.error.is_some())
}

impl TerminalFrontend {
    /// At a failed RUN, COPY or ADD: re-run it, edit it, open a shell, or give up (`None`:
    /// nobody to ask).
    fn after_failure(&mut self, at: &Checkpoint) -> Option<Resume> {
        loop {
            let answer = self.ask("[r]e-run the step, [e]dit and run it, [s]hell, [a]bort? ")?;
            match answer.as_str() {
                "r" | "rerun" | "re-run" | "retry" => {
                    let what = format!("line {}: re-run in the debugger", at.line);
                    self.deviations.insert((at.id.stage, at.id.step, 1), what);
                    return Some(Resume::Retry(None));
                }
                "e" | "edit" => {
                    let line = logical_line(&at.source);
                    self.say(&format!("line {}: {line}", at.line));
                    let text = self.ask_raw("new instruction (empty: as it is): ")?;
                    let what = if text.is_empty() {
                        format!("line {}: re-run in the debugger", at.line)
                    } else {
                        format!("line {}: edited in the debugger (was: {line})", at.line)
                    };
                    self.deviations.insert((at.id.stage, at.id.step, 1), what);
                    return Some(Resume::Retry((!text.is_empty()).then_some(text)));
                }
                "s" | "shell" => return Some(Resume::Shell(None)),
                "a" | "abort" | "q" | "" => return Some(Resume::Abort("the step failed".into())),
                _ => self.say("answer r, e, s or a"),
            }
        }
    }
}

impl Frontend for TerminalFrontend {
    fn paused(&mut self, pause: &Pause<'_>) -> Resume {
        let at = pause.at;
        let here = (at.id.stage, at.id.step, at.attempt);
        if is_failure(at) && self.shell_on_failure && self.shelled_failure != Some(here) {
            self.shelled_failure = Some(here);
            self.say(&format!(
                "\n*** line {}: {} failed — opening a shell in its build root (exit the shell to end the build)",
                at.line, at.expanded
            ));
            return Resume::Shell(None);
        }
        // `--shell-on-failure` is kaniko#1727's: look, then the build ends as it failed (CI
        // scripts count on it). Fixing and re-running is the plain failure pause's.
        if is_failure(at) && self.shelled_failure == Some(here) {
            return Resume::Abort("the step failed".into());
        }
        let when = match at.when {
            When::BeforeStep => "before",
            When::AfterStep => "after",
        };
        // In a build for several platforms, which target(s) the step's stage is built for.
        let targets = if at.targets.is_empty() { String::new() } else { format!(" for {}", at.targets.join(", ")) };
        self.say(&format!(
            "\n*** paused {when} line {}{targets}: {} ({})",
            at.line,
            at.expanded,
            pause.reasons.join("; ")
        ));
        if at.can_retry() {
            return self.after_failure(at).unwrap_or_else(|| Resume::Abort("the step failed".into()));
        }
        loop {
            let Some(answer) = self.ask("[c]ontinue, [n]ext step, [s]hell, [a]bort? ") else {
                // Nobody to ask: carry on (a failure still fails the build).
                return Resume::Continue;
            };
            match answer.as_str() {
                "c" | "continue" | "" => return Resume::Continue,
                "n" | "next" => return Resume::Step,
                "s" | "shell" => return Resume::Shell(None),
                "a" | "abort" | "q" => return Resume::Abort("aborted at the prompt".into()),
                _ => self.say("answer c, n, s or a"),
            }
        }
    }

    fn shell_changes(&mut self, at: &Checkpoint, changes: &[Change]) -> ShellChoice {
        self.say(&format!("The shell changed {} path(s):", changes.len()));
        for c in changes.iter().take(30) {
            let k = match c.kind {
                ChangeKind::Added => '+',
                ChangeKind::Modified => '~',
                ChangeKind::Deleted => '-',
            };
            self.say(&format!("  {k} {}", c.path));
        }
        if changes.len() > 30 {
            self.say(&format!("  … and {} more", changes.len() - 30));
        }
        // After `--shell-on-failure`'s shell the build ends, so there is nothing to keep the
        // changes for; at a failure that can be re-run they may be the fix.
        let here = (at.id.stage, at.id.step, at.attempt);
        if is_failure(at) && (self.shelled_failure == Some(here) || !at.can_retry()) {
            self.say("(discarded: the build stops at this failure)");
            return ShellChoice::Discard;
        }
        match self.ask("Keep them as a layer? [y/N] ").as_deref() {
            Some("y" | "yes") => {
                let n = self.deviations.len();
                let what = format!("line {}: changes kept from a debugger shell", at.line);
                self.deviations.insert((at.id.stage, at.id.step, 2 + n), what);
                ShellChoice::Keep
            }
            _ => ShellChoice::Discard,
        }
    }

    fn review_push(&mut self, review: &PushReview) -> Decision {
        if self.tty.is_none() {
            return Decision::Abort(
                "--require-approval needs a terminal to ask on, and there is none: nothing was pushed".into(),
            );
        }
        let index = !review.platforms.is_empty();
        let what = if index { "the image index " } else { "" };
        self.say(&format!("\nReady to push {what}{} ({})", review.manifest_digest, review.media_type));
        if let Some(c) = &review.config_digest {
            self.say(&format!("  config {c}"));
        }
        if !index {
            self.review_layers(&review.destinations, &review.layers, "");
        }
        for p in &review.platforms {
            self.say(&format!("  {}: manifest {} ({})", p.platform, p.manifest_digest, p.media_type));
            self.say(&format!("    config {}", p.config_digest));
            self.review_layers(&review.destinations, &p.layers, "  ");
        }
        if !self.deviations.is_empty() {
            let lines: Vec<String> = self.deviations.values().cloned().collect();
            self.say("  This image is not what the Dockerfile as written makes:");
            for d in lines {
                self.say(&format!("    {d}"));
            }
        }
        match self.ask("Push? [y/N] ").as_deref() {
            Some("y" | "yes") => Decision::Continue,
            _ => Decision::Abort("push refused at the prompt".into()),
        }
    }

    fn gates_push(&self) -> bool {
        self.require_approval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::{Digest, PlatformReview, ReviewLayer, StepId};

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn layer(c: char, step: Option<StepId>) -> ReviewLayer {
        ReviewLayer {
            digest: digest(c),
            size: 100,
            uncompressed_size: None,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            step,
            shell: None,
            present: vec![Some(false)],
            mount_from: vec![step.is_none().then(|| "busybox".to_string())],
        }
    }

    /// `--require-approval` on an index: the index, then each platform's manifest, config and
    /// layers with what the destination will do with them; the answer read from the terminal.
    #[test]
    fn the_prompt_shows_an_index_and_each_platforms_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in"), "y\n").unwrap();
        let out = dir.path().join("out");
        let mut f = TerminalFrontend::new(false, true);
        f.tty = Some((BufReader::new(File::open(dir.path().join("in")).unwrap()), File::create(&out).unwrap()));
        let platform = |p: &str, m: char, c: char, l: char, stage: usize| PlatformReview {
            platform: p.into(),
            manifest_digest: digest(m),
            config_digest: digest(c),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            layers: vec![layer('0', None), layer(l, Some(StepId { stage, step: 3 }))],
        };
        let review = PushReview {
            manifest_digest: digest('9'),
            config_digest: None,
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            destinations: vec!["127.0.0.1:5000/app:1".into()],
            layers: Vec::new(),
            platforms: vec![platform("linux/amd64", '7', '5', 'e', 1), platform("linux/arm64", '8', '6', 'f', 2)],
        };
        assert_eq!(f.review_push(&review), Decision::Continue);
        let text = std::fs::read_to_string(&out).unwrap();
        let nine = "9".repeat(64);
        assert!(
            text.contains(&format!(
                "Ready to push the image index sha256:{nine} (application/vnd.oci.image.index.v1+json)"
            )),
            "{text}"
        );
        assert!(!text.contains("  config sha256:9"), "an index has no config: {text}");
        let amd = text.find(&format!("  linux/amd64: manifest sha256:{}", "7".repeat(64))).expect(&text);
        let arm = text.find(&format!("  linux/arm64: manifest sha256:{}", "8".repeat(64))).expect(&text);
        assert!(amd < arm, "{text}");
        assert!(text.contains(&format!("    config sha256:{}", "6".repeat(64))), "{text}");
        assert_eq!(
            text.matches("    → 127.0.0.1:5000/app:1 (already has 0 of 2 layers, 1 to mount from another repository)")
                .count(),
            2,
            "{text}"
        );
        assert!(text.contains("step 2.3"), "{text}");
    }

    /// A pause in a build for several platforms says which target platform the step is for.
    #[test]
    fn a_pause_says_its_platform() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in"), "c\n").unwrap();
        let out = dir.path().join("out");
        let mut f = TerminalFrontend::new(false, false);
        f.tty = Some((BufReader::new(File::open(dir.path().join("in")).unwrap()), File::create(&out).unwrap()));
        let at = Checkpoint {
            when: When::BeforeStep,
            id: StepId { stage: 2, step: 3 },
            line: 7,
            stage_name: None,
            keyword: "RUN".into(),
            source: "RUN uname -m".into(),
            expanded: "RUN uname -m".into(),
            attempt: 1,
            report: None,
            root_dir: None,
            targets: vec!["linux/arm64".into()],
            dockerfile_stage: None,
        };
        let reasons = vec!["breakpoint at line 7 on linux/arm64".to_string()];
        assert_eq!(f.paused(&Pause { at: &at, reasons }), Resume::Continue);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains(
                "*** paused before line 7 for linux/arm64: RUN uname -m (breakpoint at line 7 on linux/arm64)"
            ),
            "{text}"
        );
    }
}
