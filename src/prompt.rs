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
        self.say(&format!("\n*** paused {when} line {}: {} ({})", at.line, at.expanded, pause.reasons.join("; ")));
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
        self.say(&format!("\nReady to push {} ({})", review.manifest_digest, review.media_type));
        if let Some(c) = &review.config_digest {
            self.say(&format!("  config {c}"));
        }
        for (i, d) in review.destinations.iter().enumerate() {
            let have = review.layers.iter().filter(|l| l.present.get(i).copied().flatten() == Some(true)).count();
            self.say(&format!("  → {d} (already has {have} of {} layers)", review.layers.len()));
        }
        for l in &review.layers {
            let origin = match (l.step, l.shell) {
                (Some(s), Some(when)) => {
                    format!("debug shell {} step {s}", trowel_events::state::maker::side(when))
                }
                (Some(s), None) => format!("step {s}"),
                (None, _) => "base".into(),
            };
            self.say(&format!("    {} {:>12} bytes  {origin}", l.digest.short(), l.size));
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
