//! The panes, gitui style: each one is a [`Component`] that owns its UI state (cursor, scroll,
//! filter), runs the actions of its keymap context and draws itself without changing anything.
//! What a pane cannot decide alone (focus another pane, open a file, select a step, say
//! something) it returns as an [`Outcome`] for the [`App`](crate::tui::app::App) reducer to
//! carry out, so panes never reach into each other. What a frame showed (the scroll position a
//! pane ended up at, which screen row holds what for the mouse) comes back from `render` and is
//! stored afterwards through [`Component::drawn`].
//!
//! One file (or folder) per pane or popup; the popups (help, review, shell) draw from the app.

pub mod breaks;
pub mod cache;
pub mod changes;
pub mod command;
pub mod editor;
pub mod file;
pub mod files;
pub mod help;
pub mod layers;
pub mod logs;
pub mod review;
pub mod shell;
pub mod source;
pub mod steps;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::app::{Input, InputTarget, Mode, Pane, PauseInfo, Severity};
use super::format;
use super::keymap::Action;
use super::model::{Model, StepView};
use super::theme::Theme;
use crate::debugger::{Breakpoint, Breakpoints};
use trowel_events::{Change, StepId, When};

pub use breaks::BreaksPane;
pub use cache::CachePane;
pub use changes::ChangesPane;
pub use file::FilePane;
pub use files::FilesPane;
pub use layers::LayersPane;
pub use logs::LogsPane;
pub use steps::StepsPane;

/// A pane: its own state, its keys and its drawing.
pub trait Component {
    /// Runs an action of the pane's keymap context.
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome;

    /// A click on a screen row of the pane.
    fn click(&mut self, _row: u16, _ctx: &Ctx) -> Outcome {
        Outcome::Ignored
    }

    /// Draws the pane into `area` (inside its border) and says what it showed.
    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> View;

    /// Takes in what the last frame showed (a [`View`] of this pane).
    fn drawn(&mut self, view: View);
}

/// The panes, one component each.
#[derive(Debug, Default)]
pub struct Panes {
    pub steps: StepsPane,
    pub changes: ChangesPane,
    pub file: FilePane,
    pub cache: CachePane,
    pub layers: LayersPane,
    pub logs: LogsPane,
    pub breaks: BreaksPane,
    pub files: FilesPane,
}

impl Panes {
    pub fn get(&self, pane: Pane) -> &dyn Component {
        match pane {
            Pane::Steps => &self.steps,
            Pane::Changes => &self.changes,
            Pane::File => &self.file,
            Pane::Cache => &self.cache,
            Pane::Layers => &self.layers,
            Pane::Logs => &self.logs,
            Pane::Breaks => &self.breaks,
            Pane::Files => &self.files,
        }
    }

    pub fn get_mut(&mut self, pane: Pane) -> &mut dyn Component {
        match pane {
            Pane::Steps => &mut self.steps,
            Pane::Changes => &mut self.changes,
            Pane::File => &mut self.file,
            Pane::Cache => &mut self.cache,
            Pane::Layers => &mut self.layers,
            Pane::Logs => &mut self.logs,
            Pane::Breaks => &mut self.breaks,
            Pane::Files => &mut self.files,
        }
    }
}

/// What a pane's action asks of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled within the pane.
    Done,
    /// Not an action of this pane here (`esc` then falls through to clearing the message).
    Ignored,
    Focus(Pane),
    /// Focus the detail pane shown on the right.
    ShowDetail,
    /// Show a path of the shown changes in the File pane.
    OpenFile(String),
    /// Select the step (that made a layer) and show its changes.
    ShowStep(StepId),
    /// Start typing a line (filter, search) from this text.
    Input(InputTarget, String),
    /// Run another action in its place (`n` in Logs without a search steps the build).
    Act(Action),
    Say(String, Severity),
    /// Put text on the clipboard; the second string says what it is (`the path`).
    Copy(String, String),
    /// Remove the breakpoint written so (`12`, `cache-miss`).
    RemoveBreakpoint(String),
}

/// What a frame of a pane showed, for [`Component::drawn`]: where its scroll position ended up
/// (clamped to what there is) and which screen row shows what (for the mouse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Steps(steps::View),
    /// The Dockerfile under the Steps pane: screen row → line.
    Source(Vec<(u16, usize)>),
    Changes(changes::View),
    /// The File, Cache and Logs panes: the first line shown.
    File(usize),
    Cache(usize),
    Layers(layers::View),
    Logs(usize),
    Breaks(breaks::View),
    Files(files::View),
}

impl View {
    /// The pane that showed it.
    pub fn pane(&self) -> Pane {
        match self {
            View::Steps(_) | View::Source(_) => Pane::Steps,
            View::Changes(_) => Pane::Changes,
            View::File(_) => Pane::File,
            View::Cache(_) => Pane::Cache,
            View::Layers(_) => Pane::Layers,
            View::Logs(_) => Pane::Logs,
            View::Breaks(_) => Pane::Breaks,
            View::Files(_) => Pane::Files,
        }
    }
}

/// What the panes see of the rest of the app, read-only.
pub struct Ctx<'a> {
    pub model: &'a Model,
    pub mode: Mode,
    /// The selected step (the Steps pane owns which one it is).
    pub step: Option<&'a StepView>,
    /// The changes the Changes and File panes show: the selected step's or, while its popup is
    /// open, a shell session's.
    pub changes: &'a [Change],
    /// Those are a shell session's.
    pub shell: bool,
    pub pause: Option<&'a PauseInfo>,
    /// The step (and side of it) whose shell session's changes await keep or discard: the
    /// build waits there, as at a pause, though the pause itself was answered with the shell.
    pub held: Option<(StepId, When)>,
    /// The line being typed, if any.
    pub input: Option<&'a Input>,
    pub breakpoints: Option<&'a Breakpoints>,
    /// The build's clock (ms since it started).
    pub now_ms: u64,
    /// Rows a page of the focused pane holds (from the last frame).
    pub page: usize,
    /// The target platform the Steps pane shows (a build for several; `None`: all).
    pub platform: Option<String>,
}

impl Ctx<'_> {
    pub fn selected_id(&self) -> Option<StepId> {
        self.step.map(|s| s.id)
    }

    /// The changes shown are a cached layer's entries that nothing compared with the layers
    /// below (`StepView::unclassified`): "added" is not known from "modified", nor what a
    /// deleted path was.
    pub fn unclassified(&self) -> bool {
        !self.shell && self.step.is_some_and(|s| s.unclassified)
    }

    /// The text being typed for `target`, if that is what is being typed.
    pub fn typing(&self, target: InputTarget) -> Option<&str> {
        self.input.filter(|i| i.target == target).map(|i| i.text.as_str())
    }

    /// Line breakpoints currently set (those limited to one platform too).
    pub fn breakpoint_lines(&self) -> Vec<usize> {
        self.line_breakpoints().into_iter().map(|(l, _)| l).collect()
    }

    /// Line breakpoints currently set, with the platform each is limited to.
    pub fn line_breakpoints(&self) -> Vec<(usize, Option<String>)> {
        self.with_breakpoints(|b| {
            b.iter()
                .filter_map(|b| match b.base() {
                    Breakpoint::Line(l) => Some((*l, b.platform().map(str::to_string))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The stage breakpoints currently set (names or numbers, lower case), with the platform
    /// each is limited to.
    pub fn stage_breakpoints(&self) -> Vec<(String, Option<String>)> {
        self.with_breakpoints(|b| {
            b.iter()
                .filter_map(|b| match b.base() {
                    Breakpoint::Stage(s) => Some((s.to_lowercase(), b.platform().map(str::to_string))),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// Descriptions of the other breakpoints (failure, cache miss, size, path, stage, and any
    /// limited to one platform, lines too).
    pub fn other_breakpoints(&self) -> Vec<String> {
        self.with_breakpoints(|b| {
            b.iter().filter(|b| !matches!(b, Breakpoint::Line(_))).map(|b| b.describe()).collect()
        })
        .unwrap_or_default()
    }

    /// The breakpoints set: the debugger's, live; in a replay, the list the trace recorded
    /// last (`None`: neither).
    fn with_breakpoints<T>(&self, f: impl FnOnce(&[Breakpoint]) -> T) -> Option<T> {
        if let Some(b) = self.breakpoints {
            let guard = b.lock().unwrap_or_else(|p| p.into_inner());
            return Some(f(&guard));
        }
        let recorded = self.model.breakpoints.as_ref()?;
        let parsed: Vec<Breakpoint> = recorded.iter().filter_map(|s| Breakpoint::parse(s).ok()).collect();
        Some(f(&parsed))
    }
}

/// A cursor or scroll movement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Motion {
    By(isize),
    /// To a position; `usize::MAX` is the end.
    To(usize),
}

impl Motion {
    /// The movement an action means, with pages of `page` rows.
    pub fn of(action: Action, page: usize) -> Option<Motion> {
        let page = page as isize;
        Some(match action {
            Action::Up => Motion::By(-1),
            Action::Down => Motion::By(1),
            Action::PageUp => Motion::By(-page),
            Action::PageDown => Motion::By(page),
            Action::HalfPageUp => Motion::By(-(page / 2).max(1)),
            Action::HalfPageDown => Motion::By((page / 2).max(1)),
            Action::Top => Motion::To(0),
            Action::Bottom => Motion::To(usize::MAX),
            _ => return None,
        })
    }

    /// Where `from` moves to (unbounded: the caller clamps).
    pub fn apply(self, from: usize) -> usize {
        match self {
            Motion::By(d) if d < 0 => from.saturating_sub(d.unsigned_abs()),
            Motion::By(d) => from.saturating_add(d as usize),
            Motion::To(pos) => pos,
        }
    }

    /// Where a cursor over `len` rows moves to.
    pub fn clamped(self, from: usize, len: usize) -> usize {
        self.apply(from).min(len.saturating_sub(1))
    }
}

/// The first row to show so that `cursor` is visible in `height` rows, keeping the previous
/// scroll position when possible.
pub fn scroll_for(cursor: usize, scroll: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let max = len.saturating_sub(height);
    let s = if cursor < scroll {
        cursor
    } else if cursor >= scroll + height {
        cursor + 1 - height
    } else {
        scroll
    };
    s.min(max)
}

/// A label/value row for detail views: the label padded to `label_width`.
pub fn field<'a>(label: &str, label_width: usize, value: Vec<Span<'a>>, label_style: Style) -> Line<'a> {
    let mut spans = vec![Span::styled(format::fit(label, label_width), label_style)];
    spans.extend(value);
    Line::from(spans)
}

/// Wraps plain text into lines of at most `width` columns (on spaces where possible).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let width = width.max(8);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split(' ') {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if candidate.width() <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word longer than the width is cut into pieces.
            let mut rest = word.to_string();
            while rest.width() > width {
                let cut: String = rest.chars().take(width).collect();
                rest = rest.chars().skip(width).collect();
                out.push(cut);
            }
            line = rest;
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolling_keeps_the_cursor_visible() {
        assert_eq!(scroll_for(0, 0, 5, 20), 0);
        assert_eq!(scroll_for(7, 0, 5, 20), 3);
        assert_eq!(scroll_for(4, 3, 5, 20), 3);
        assert_eq!(scroll_for(1, 3, 5, 20), 1);
        assert_eq!(scroll_for(19, 30, 5, 20), 15);
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("one two three four", 9), ["one two", "three", "four"]);
        assert_eq!(wrap("abcdefghijkl", 8), ["abcdefgh", "ijkl"]);
    }

    #[test]
    fn motions() {
        assert_eq!(Motion::of(Action::HalfPageDown, 1), Some(Motion::By(1)));
        assert_eq!(Motion::By(-3).apply(1), 0);
        assert_eq!(Motion::To(usize::MAX).clamped(0, 4), 3);
        assert_eq!(Motion::By(1).clamped(0, 0), 0);
    }
}
