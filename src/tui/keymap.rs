//! Every key binding of the debugger, in one table.
//!
//! Keys follow gitui, yazi and bottom: arrows and vim keys both move, `tab`/`shift-tab` and
//! the numbers pick panes, `?` opens help, `/` filters or searches, `Esc` closes, `q` quits
//! (asking first while a build runs) and `ctrl-c` always exits. The table is what the help
//! overlay lists (the current pane's keys first) and what the key-hint bar shows, so the
//! documentation cannot drift from the behaviour. Each hint also says in which state of the
//! build it means something ([`Shown`]): the bar never offers `n next` once the build is over.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere (unless a popup or text input has the keyboard).
    Global,
    /// Debugging a live build (not in a replay).
    Debug,
    Steps,
    Changes,
    File,
    Cache,
    Layers,
    Logs,
    Breaks,
    Files,
    /// The full command of a step.
    Command,
    /// The push review popup.
    Review,
    /// After a shell session: keep or discard its changes.
    ShellChanges,
    /// A yes/no question.
    Confirm,
    /// The failed instruction's editor (every printable key is text).
    Editor,
    Help,
}

impl Context {
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Debug => "Debugging",
            Context::Steps => "Steps",
            Context::Changes => "Changes",
            Context::File => "File",
            Context::Cache => "Cache",
            Context::Layers => "Layers",
            Context::Logs => "Logs",
            Context::Breaks => "Breakpoints",
            Context::Files => "Files",
            Context::Command => "Command",
            Context::Review => "Push review",
            Context::ShellChanges => "Shell changes",
            Context::Confirm => "Question",
            Context::Editor => "Edit and run",
            Context::Help => "Help",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    ForceQuit,
    Help,
    Close,
    NextPane,
    PrevPane,
    FocusSteps,
    FocusChanges,
    FocusFile,
    FocusCache,
    FocusLayers,
    FocusLogs,
    FocusBreaks,
    FocusFiles,
    Zoom,
    ShowPush,
    Up,
    Down,
    PageUp,
    PageDown,
    HalfPageUp,
    HalfPageDown,
    Top,
    Bottom,
    Collapse,
    Expand,
    Toggle,
    Open,
    Filter,
    Sort,
    CollapseAll,
    ExpandAll,
    NextMatch,
    PrevMatch,
    Follow,
    Scope,
    StepNext,
    Continue,
    RunToCursor,
    ToggleBreakpoint,
    BreakOnFailure,
    BreakOnCacheMiss,
    Shell,
    /// Copy what is selected (command, path, digest, breakpoint) to the clipboard (OSC 52).
    Copy,
    /// Show the selected step's whole expanded command.
    ShowCommand,
    /// Add an item (a breakpoint).
    Add,
    /// Remove the selected item (a breakpoint).
    Remove,
    /// Re-run the failed step.
    Retry,
    /// Edit the failed step's instruction, then run it.
    EditStep,
    /// Cycle the target platform whose steps are shown (a build for several platforms).
    Platform,
    Yes,
    No,
}

/// A key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key { code, mods: KeyModifiers::NONE }
    }
    pub const fn ch(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }
    pub const fn ctrl(c: char) -> Key {
        Key { code: KeyCode::Char(c), mods: KeyModifiers::CONTROL }
    }

    /// Whether a key event is this key. Shift is part of the character for letters and
    /// symbols (`G`, `?`), so it is ignored there.
    pub fn matches(&self, e: &KeyEvent) -> bool {
        let relevant = KeyModifiers::CONTROL | KeyModifiers::ALT;
        let shift_matters = !matches!(e.code, KeyCode::Char(_) | KeyCode::BackTab);
        let mask = if shift_matters { relevant | KeyModifiers::SHIFT } else { relevant };
        self.code == e.code && (self.mods & mask) == (e.modifiers & mask)
    }

    /// How the help and the hint bar write it.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "shift-tab".into(),
            other => format!("{other:?}").to_lowercase(),
        };
        if self.mods.contains(KeyModifiers::CONTROL) { format!("ctrl-{base}") } else { base }
    }
}

/// When the hint bar offers a binding (help lists every binding, whatever the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Whenever its context applies.
    Always,
    /// While a live build runs (not in a replay, not once it is over).
    Running,
    /// While the build is paused and waits for the person.
    Paused,
    /// While the push review waits for an answer.
    Asked,
    /// While the push review is open and answered (or only shows what was pushed).
    Answered,
}

#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub context: Context,
    pub keys: &'static [Key],
    pub action: Action,
    pub desc: &'static str,
    /// Shown in the hint bar (the most useful keys of a context).
    pub hint: Option<&'static str>,
    /// When the hint bar shows `hint`.
    pub shown: Shown,
}

use Action as A;
use Context as C;
use KeyCode as K;

const fn b(context: Context, keys: &'static [Key], action: Action, desc: &'static str) -> Binding {
    Binding { context, keys, action, desc, hint: None, shown: Shown::Always }
}

const fn h(context: Context, keys: &'static [Key], action: Action, desc: &'static str, hint: &'static str) -> Binding {
    Binding { context, keys, action, desc, hint: Some(hint), shown: Shown::Always }
}

/// A hint shown only in one state of the build.
const fn hs(
    context: Context,
    keys: &'static [Key],
    action: Action,
    desc: &'static str,
    hint: &'static str,
    shown: Shown,
) -> Binding {
    Binding { context, keys, action, desc, hint: Some(hint), shown }
}

/// The whole keymap. Within a context the first matching binding wins; a pane's context is
/// consulted before [`Context::Debug`] and [`Context::Global`].
pub const BINDINGS: &[Binding] = &[
    // Debugging (live builds only). Re-running is first: at a failure pause it is what the
    // hint bar should offer before anything else (the app offers these two only there).
    hs(
        C::Debug,
        &[Key::ch('R')],
        A::Retry,
        "re-run the failed step (at a failure pause, after fixing things in a shell)",
        "retry",
        Shown::Paused,
    ),
    hs(
        C::Debug,
        &[Key::ch('E')],
        A::EditStep,
        "edit the failed step's instruction and run it (at a failure pause)",
        "edit",
        Shown::Paused,
    ),
    hs(C::Debug, &[Key::ch('n')], A::StepNext, "step: run to the next instruction and pause", "next", Shown::Paused),
    hs(C::Debug, &[Key::ch('c')], A::Continue, "continue to the next breakpoint", "continue", Shown::Paused),
    hs(C::Debug, &[Key::ch('!')], A::Shell, "open a shell in the build root (at a pause)", "shell", Shown::Paused),
    hs(
        C::Debug,
        &[Key::ch('b')],
        A::ToggleBreakpoint,
        "toggle a breakpoint on the selected step's line (the platform's, while Steps shows one)",
        "break",
        Shown::Running,
    ),
    hs(C::Debug, &[Key::ch('r')], A::RunToCursor, "run to the selected step (run to cursor)", "run to", Shown::Paused),
    h(C::Editor, &[Key::plain(K::Enter)], A::Yes, "run the instruction as edited", "run it"),
    h(C::Editor, &[Key::plain(K::Esc)], A::Close, "close the editor (the build stays paused)", "cancel"),
    b(C::Debug, &[Key::ch('F')], A::BreakOnFailure, "toggle breaking when a step fails"),
    b(C::Debug, &[Key::ch('M')], A::BreakOnCacheMiss, "toggle breaking when a step misses the cache"),
    // Steps.
    b(C::Steps, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "previous step"),
    b(C::Steps, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "next step"),
    b(C::Steps, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "first step (gg)"),
    b(C::Steps, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "last step"),
    b(C::Steps, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::Steps, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    h(
        C::Steps,
        &[Key::plain(K::Enter), Key::ch('l'), Key::plain(K::Right)],
        A::Open,
        "show the step's changes",
        "changes",
    ),
    b(C::Steps, &[Key::ch('f')], A::Follow, "follow the running step"),
    h(C::Steps, &[Key::ch('e')], A::ShowCommand, "the step's whole command, as run", "command"),
    // Only in a build for several platforms (hinted and listed in help only there).
    h(
        C::Steps,
        &[Key::ch('t')],
        A::Platform,
        "show one target platform's steps (shared stages too), then the next, then all",
        "platform",
    ),
    // Changes.
    b(C::Changes, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "previous path"),
    b(C::Changes, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "next path"),
    b(C::Changes, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "first path (gg)"),
    b(C::Changes, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "last path"),
    b(C::Changes, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::Changes, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    b(C::Changes, &[Key::ctrl('u')], A::HalfPageUp, "half a page up"),
    b(C::Changes, &[Key::ctrl('d')], A::HalfPageDown, "half a page down"),
    b(C::Changes, &[Key::ch('h'), Key::plain(K::Left)], A::Collapse, "collapse the directory, or go to its parent"),
    b(C::Changes, &[Key::ch('l'), Key::plain(K::Right)], A::Expand, "expand the directory"),
    b(C::Changes, &[Key::ch(' ')], A::Toggle, "collapse or expand"),
    h(C::Changes, &[Key::plain(K::Enter)], A::Open, "open the file (diff and metadata)", "open"),
    h(C::Changes, &[Key::ch('/')], A::Filter, "filter paths", "filter"),
    h(C::Changes, &[Key::ch('s')], A::Sort, "sort by name or size", "sort"),
    b(C::Changes, &[Key::ch('-')], A::CollapseAll, "collapse all"),
    b(C::Changes, &[Key::ch('+'), Key::ch('=')], A::ExpandAll, "expand all"),
    // File.
    b(C::File, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::File, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    b(C::File, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "top (gg)"),
    b(C::File, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "bottom"),
    b(C::File, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::File, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    b(C::File, &[Key::ctrl('u')], A::HalfPageUp, "half a page up"),
    b(C::File, &[Key::ctrl('d')], A::HalfPageDown, "half a page down"),
    h(C::File, &[Key::ch('h'), Key::plain(K::Left)], A::Collapse, "back to the changes", "back"),
    // Cache.
    b(C::Cache, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::Cache, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    b(C::Cache, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "top (gg)"),
    b(C::Cache, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "bottom"),
    b(C::Cache, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::Cache, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    // Layers.
    b(C::Layers, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "previous layer"),
    b(C::Layers, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "next layer"),
    b(C::Layers, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "first layer (gg)"),
    b(C::Layers, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "last layer"),
    h(C::Layers, &[Key::plain(K::Enter)], A::Open, "select the step that made the layer", "step"),
    // Logs.
    b(C::Logs, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::Logs, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    b(C::Logs, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "top (gg)"),
    b(C::Logs, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "bottom (and follow new output)"),
    b(C::Logs, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::Logs, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    b(C::Logs, &[Key::ctrl('u')], A::HalfPageUp, "half a page up"),
    b(C::Logs, &[Key::ctrl('d')], A::HalfPageDown, "half a page down"),
    h(C::Logs, &[Key::ch('/')], A::Filter, "search the output", "search"),
    b(C::Logs, &[Key::ch('n')], A::NextMatch, "next match (while searching; else step)"),
    b(C::Logs, &[Key::ch('N')], A::PrevMatch, "previous match (while searching)"),
    h(C::Logs, &[Key::ch('a')], A::Scope, "all steps' output or the selected step's", "all/step"),
    h(C::Logs, &[Key::ch('f')], A::Follow, "follow new output", "follow"),
    // Breakpoints.
    b(C::Breaks, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "previous breakpoint"),
    b(C::Breaks, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "next breakpoint"),
    b(C::Breaks, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "first breakpoint (gg)"),
    b(C::Breaks, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "last breakpoint"),
    h(
        C::Breaks,
        &[Key::ch('a')],
        A::Add,
        "add a breakpoint (12, stage:NAME, failure, cache-miss, size:10MB, path:GLOB; linux/arm64@12: one platform)",
        "add",
    ),
    h(C::Breaks, &[Key::ch('d'), Key::plain(K::Delete)], A::Remove, "remove the selected breakpoint", "remove"),
    h(C::Breaks, &[Key::plain(K::Enter)], A::Open, "select the step where it last fired", "step"),
    // Files.
    b(C::Files, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "previous path"),
    b(C::Files, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "next path"),
    b(C::Files, &[Key::ch('g'), Key::plain(K::Home)], A::Top, "first path (gg)"),
    b(C::Files, &[Key::ch('G'), Key::plain(K::End)], A::Bottom, "last path"),
    b(C::Files, &[Key::plain(K::PageUp), Key::ctrl('b')], A::PageUp, "page up"),
    b(C::Files, &[Key::plain(K::PageDown), Key::ctrl('f')], A::PageDown, "page down"),
    b(C::Files, &[Key::ctrl('u')], A::HalfPageUp, "half a page up"),
    b(C::Files, &[Key::ctrl('d')], A::HalfPageDown, "half a page down"),
    b(C::Files, &[Key::ch('h'), Key::plain(K::Left)], A::Collapse, "collapse the directory, or go to its parent"),
    b(C::Files, &[Key::ch('l'), Key::plain(K::Right)], A::Expand, "expand the directory"),
    b(C::Files, &[Key::ch(' ')], A::Toggle, "collapse or expand"),
    h(C::Files, &[Key::ch('a')], A::Scope, "the whole file system at the step, or only its changes", "all/changes"),
    h(C::Files, &[Key::plain(K::Enter)], A::Open, "open a path the step changed (diff and metadata)", "open"),
    h(C::Files, &[Key::ch('/')], A::Filter, "filter paths", "filter"),
    b(C::Files, &[Key::ch('s')], A::Sort, "sort by name or size"),
    b(C::Files, &[Key::ch('-')], A::CollapseAll, "collapse all"),
    b(C::Files, &[Key::ch('+'), Key::ch('=')], A::ExpandAll, "expand all"),
    // The full command of a step.
    b(C::Command, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::Command, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    h(C::Command, &[Key::ch('y')], A::Copy, "copy the command to the clipboard (OSC 52)", "copy"),
    h(C::Command, &[Key::plain(K::Esc), Key::ch('q'), Key::ch('e')], A::Close, "close", "close"),
    // Popups.
    hs(C::Review, &[Key::ch('y')], A::Yes, "push the image", "push", Shown::Asked),
    hs(C::Review, &[Key::ch('n')], A::No, "do not push (abort the build)", "abort", Shown::Asked),
    b(C::Review, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::Review, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    h(C::Review, &[Key::plain(K::Esc)], A::Close, "close: look at the panes (p brings the review back)", "panes"),
    h(C::ShellChanges, &[Key::ch('y'), Key::plain(K::Enter)], A::Yes, "keep the changes as a layer", "keep"),
    h(C::ShellChanges, &[Key::ch('d'), Key::ch('n')], A::No, "discard the changes", "discard"),
    b(C::ShellChanges, &[Key::ch('k'), Key::plain(K::Up)], A::Up, "scroll up"),
    b(C::ShellChanges, &[Key::ch('j'), Key::plain(K::Down)], A::Down, "scroll down"),
    h(C::Confirm, &[Key::ch('y')], A::Yes, "yes", "yes"),
    h(C::Confirm, &[Key::ch('n'), Key::plain(K::Esc)], A::No, "no", "no"),
    b(C::Help, &[Key::plain(K::Up)], A::Up, "previous binding"),
    b(C::Help, &[Key::plain(K::Down)], A::Down, "next binding"),
    h(C::Help, &[Key::plain(K::Enter)], A::Open, "run the selected binding", "run"),
    h(C::Help, &[Key::plain(K::Esc)], A::Close, "close help (type to filter)", "close"),
    // Everywhere.
    h(C::Global, &[Key::ch('?')], A::Help, "help: every key of this pane", "help"),
    h(C::Global, &[Key::ch('q')], A::Quit, "quit (asks while a build runs)", "quit"),
    b(C::Global, &[Key::ctrl('c')], A::ForceQuit, "exit now (aborts a running build)"),
    b(C::Global, &[Key::plain(K::Esc)], A::Close, "close, clear the filter, leave zoom"),
    b(C::Global, &[Key::plain(K::Tab)], A::NextPane, "next pane"),
    b(C::Global, &[Key::plain(K::BackTab)], A::PrevPane, "previous pane"),
    b(C::Global, &[Key::ch('1')], A::FocusSteps, "Steps pane"),
    b(C::Global, &[Key::ch('2')], A::FocusChanges, "Changes pane"),
    b(C::Global, &[Key::ch('3')], A::FocusFile, "File pane"),
    b(C::Global, &[Key::ch('4')], A::FocusCache, "Cache pane"),
    b(C::Global, &[Key::ch('5')], A::FocusLayers, "Layers pane"),
    b(C::Global, &[Key::ch('6')], A::FocusLogs, "Logs pane"),
    b(C::Global, &[Key::ch('7')], A::FocusBreaks, "Breakpoints pane"),
    b(C::Global, &[Key::ch('8')], A::FocusFiles, "Files pane: the whole file system at the step"),
    h(C::Global, &[Key::ch('p')], A::ShowPush, "show the push review and progress", "push"),
    h(C::Global, &[Key::ch('y')], A::Copy, "copy the selected command, path, digest or breakpoint (OSC 52)", "copy"),
    h(C::Global, &[Key::ch('z')], A::Zoom, "zoom the focused pane (esc or z again to leave)", "zoom"),
];

/// The action a key triggers in the given contexts (searched in order).
pub fn lookup(contexts: &[Context], key: &KeyEvent) -> Option<Action> {
    contexts.iter().find_map(|&c| {
        BINDINGS.iter().find(|b| b.context == c && b.keys.iter().any(|k| k.matches(key))).map(|b| b.action)
    })
}

/// The bindings of the given contexts, in order, for the help overlay.
pub fn bindings(contexts: &[Context]) -> Vec<&'static Binding> {
    contexts.iter().flat_map(|&c| BINDINGS.iter().filter(move |b| b.context == c)).collect()
}

/// `j/↓`: every key of a binding.
pub fn keys_label(b: &Binding) -> String {
    b.keys.iter().map(Key::label).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn pane_keys_win_over_global_ones_and_shift_is_part_of_letters() {
        let n = key(KeyCode::Char('n'), KeyModifiers::NONE);
        assert_eq!(lookup(&[C::Logs, C::Debug, C::Global], &n), Some(A::NextMatch));
        assert_eq!(lookup(&[C::Steps, C::Debug, C::Global], &n), Some(A::StepNext));
        let big_g = key(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(&[C::Steps], &big_g), Some(A::Bottom));
        assert_eq!(lookup(&[C::Global], &key(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(A::ForceQuit));
        assert_eq!(lookup(&[C::Global], &key(KeyCode::Char('c'), KeyModifiers::NONE)), None);
        assert_eq!(lookup(&[C::Global], &key(KeyCode::BackTab, KeyModifiers::SHIFT)), Some(A::PrevPane));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for (i, a) in BINDINGS.iter().enumerate() {
            for b2 in &BINDINGS[i + 1..] {
                if a.context != b2.context {
                    continue;
                }
                for k in a.keys {
                    assert!(!b2.keys.contains(k), "{k:?} is bound twice in {:?}", a.context);
                }
            }
        }
    }
}
