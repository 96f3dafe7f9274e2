//! The File pane: one changed path's metadata before and after the step (type, size, mode,
//! owner, link target, digest) and, when the content of a small text file was recorded, a
//! diff with the changed words emphasised. Without recorded content (binaries, large files,
//! traces that carry none) the metadata summary is what there is.
//!
//! The pane owns which path it shows (the Changes pane asks the app to open one) and its
//! scroll position.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, Motion, Outcome, View, field, wrap};
use crate::tui::app::Pane;
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::model::FileContent;
use crate::tui::model::diff::{self, DiffLine};
use crate::tui::theme::Theme;
use trowel_events::{Change, ChangeKind, FileType};

const LABEL: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct FilePane {
    /// The path shown (one of the shown changes).
    path: Option<String>,
    /// First visible line; past the end until a frame clamps it.
    scroll: usize,
}

impl FilePane {
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub fn open(&mut self, path: String) {
        self.path = Some(path);
        self.scroll = 0;
    }

    /// Another step is selected: its changes do not have this path.
    pub fn step_changed(&mut self) {
        self.path = None;
        self.scroll = 0;
    }

    /// Every line of the pane (the caller scrolls).
    pub fn lines<'a>(&self, ctx: &Ctx, theme: &Theme, width: usize) -> Vec<Line<'a>> {
        let Some(path) = self.path.clone() else {
            return vec![Line::from(Span::styled("pick a path in Changes (2) and press enter", theme.dim))];
        };
        let Some(change) = ctx.changes.iter().find(|c| c.path == path) else {
            return vec![Line::from(Span::styled(format!("{path}: not changed by the selected step"), theme.dim))];
        };
        let step = ctx.step;
        let content = step.and_then(|s| s.contents.get(&path));
        let mut out = Vec::new();
        let unclassified = ctx.unclassified();
        let (k, kstyle) = super::changes::kind(change, unclassified, theme);
        out.push(Line::from(vec![
            Span::styled(format!("{k} "), kstyle),
            Span::styled(format::sanitize(&path), theme.title_focus),
        ]));
        if let Some(s) = step {
            let what = match change.kind {
                ChangeKind::Added if unclassified => "in the layer (added or modified: not known)",
                ChangeKind::Added => "added",
                ChangeKind::Modified => "modified",
                ChangeKind::Deleted => "deleted",
            };
            let text =
                format!("{what} by line {}: {}", s.line, format::one_line(s.expanded.as_deref().unwrap_or(&s.source)));
            out.push(Line::from(Span::styled(format::truncate(&text, width), theme.dim)));
        }
        out.push(Line::default());
        out.extend(metadata(change, unclassified, theme, width));
        out.push(Line::default());
        out.extend(body(change, unclassified, content, theme, width));
        out
    }
}

impl Component for FilePane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        if let Some(m) = Motion::of(action, ctx.page) {
            self.scroll = m.apply(self.scroll);
            return Outcome::Done;
        }
        match action {
            Action::Collapse | Action::Close => Outcome::Focus(Pane::Changes),
            _ => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> View {
        let lines = self.lines(ctx, theme, area.width as usize);
        let max = lines.len().saturating_sub(area.height as usize);
        let scroll = self.scroll.min(max);
        let visible: Vec<Line> = lines.into_iter().skip(scroll).take(area.height as usize).collect();
        frame.render_widget(Paragraph::new(visible), area);
        View::File(scroll)
    }

    fn drawn(&mut self, view: View) {
        if let View::File(scroll) = view {
            self.scroll = scroll;
        }
    }
}

/// The before/after table. In an `unclassified` listing what was there before is not known:
/// "?", not "—" (absent), and nothing is marked as changed.
fn metadata<'a>(c: &Change, unclassified: bool, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let col = width.saturating_sub(LABEL) / 2;
    let prev = c.previous.as_deref();
    let (before_exists, after_exists) = match c.kind {
        ChangeKind::Added if unclassified => (true, true),
        ChangeKind::Added => (false, true),
        ChangeKind::Modified => (true, true),
        ChangeKind::Deleted => (true, false),
    };
    let none = "—".to_string();
    let row = |label: &str, before: String, after: String| -> Line<'a> {
        let compared = before_exists && after_exists && prev.is_some();
        let style = if before != after && compared { theme.modified } else { theme.text };
        field(
            label,
            LABEL,
            vec![Span::styled(format::fit(&before, col), theme.dim), Span::styled(format::fit(&after, col), style)],
            theme.header,
        )
    };
    let b = |f: &dyn Fn(&trowel_events::PrevMeta) -> String| -> String {
        if !before_exists {
            return none.clone();
        }
        prev.map_or_else(|| "?".to_string(), f)
    };
    let a = |v: String| if after_exists { v } else { none.clone() };
    let size = |t: FileType, s: u64| if t == FileType::File { format::bytes(s) } else { none.clone() };
    let mut lines = vec![field(
        "",
        LABEL,
        vec![
            Span::styled(format::fit("before", col), theme.header),
            Span::styled(format::fit("after", col), theme.header),
        ],
        theme.header,
    )];
    lines.push(row("type", b(&|p| format::file_type(p.file_type).into()), a(format::file_type(c.file_type).into())));
    lines.push(row("size", b(&|p| size(p.file_type, p.size)), a(size(c.file_type, c.size))));
    lines.push(row(
        "mode",
        b(&|p| format!("{} {}", format::mode(p.mode), format::octal(p.mode))),
        a(format!("{} {}", format::mode(c.mode), format::octal(c.mode))),
    ));
    lines.push(row("owner", b(&|p| format!("{}:{}", p.uid, p.gid)), a(format!("{}:{}", c.uid, c.gid))));
    let link_before = b(&|p| p.link_target.clone().unwrap_or_else(|| none.clone()));
    let link_after = a(c.link_target.clone().unwrap_or_else(|| none.clone()));
    if prev.is_some_and(|p| p.link_target.is_some()) || link_after != none {
        lines.push(row("link", format::sanitize(&link_before), format::sanitize(&link_after)));
    }
    // Digests: the engine reports the old one when asked (the debugger asks); older traces
    // lack it.
    let before_digest = prev.and_then(|p| p.digest.as_ref());
    if c.digest.is_some() || before_digest.is_some() {
        let shown = |exists: bool, d: Option<&trowel_events::Digest>| match (exists, d) {
            (false, _) => none.clone(),
            (true, Some(d)) => d.short().to_string(),
            (true, None) => "(not recorded)".to_string(),
        };
        lines.push(row("digest", shown(before_exists, before_digest), shown(after_exists, c.digest.as_ref())));
    }
    // A time that changed is shown: for a directory whose entries changed it is all that did.
    if let Some(before) = prev.and_then(|p| p.mtime).filter(|t| before_exists && after_exists && *t != c.mtime) {
        lines.push(row("mtime", format::timestamp(before), format::timestamp(c.mtime)));
    }
    // Modified, and nothing above differs: what changed is what changes are not recorded with
    // (an extended attribute, or only the change time, which the snapshot saw).
    let alike = prev.is_some_and(|p| {
        c.kind == ChangeKind::Modified
            && !unclassified
            && (p.file_type, p.size, p.mode, p.uid, p.gid) == (c.file_type, c.size, c.mode, c.uid, c.gid)
            && p.link_target == c.link_target
            && match (&p.digest, &c.digest) {
                (Some(x), Some(y)) => x == y,
                // A file whose content was not compared may have changed in it.
                (None, None) => c.file_type != FileType::File,
                _ => false,
            }
            && p.mtime.is_none_or(|t| t == c.mtime)
    });
    if alike {
        lines.extend(wrap(
            "nothing shown here changed: what did is not recorded (an extended attribute, or the change time alone)",
            width,
        )
        .into_iter()
        .map(|l| Line::from(Span::styled(l, theme.dim))));
    }
    if c.opaque {
        lines.push(Line::from(Span::styled(
            "re-created directory: nothing from lower layers shows through",
            theme.status_warn,
        )));
    }
    lines
}

/// The content part: a diff, or why there is none.
fn body<'a>(
    c: &Change,
    unclassified: bool,
    content: Option<&FileContent>,
    theme: &Theme,
    width: usize,
) -> Vec<Line<'a>> {
    let note = |text: String, style: Style| -> Vec<Line<'a>> {
        wrap(&text, width).into_iter().map(|l| Line::from(Span::styled(l, style))).collect()
    };
    if unclassified && c.kind == ChangeKind::Deleted {
        // The whiteout's type is "file" whatever it deleted.
        return note(
            "deleted by the layer: what the path was (file, directory, link) is not known, the layer was \
             listed without the layers below"
                .into(),
            theme.dim,
        );
    }
    match c.file_type {
        FileType::Dir => return note("a directory: its own changes are the metadata above".into(), theme.dim),
        FileType::Symlink => return note("a symbolic link: its content is the link target above".into(), theme.dim),
        FileType::Hardlink => {
            return note(
                format!("another name of {} (a hard link): same content", c.link_target.as_deref().unwrap_or("?")),
                theme.dim,
            );
        }
        FileType::File => {}
        _ => return note("a special file: no content".into(), theme.dim),
    }
    let Some(content) = content else {
        let what = match c.kind {
            ChangeKind::Deleted => "the file was deleted".to_string(),
            _ => format!("{} of content", format::bytes(c.size)),
        };
        return note(
            format!(
                "content not recorded ({what}): the debugger shows a diff for small text files whose content the build recorded"
            ),
            theme.dim,
        );
    };
    // A side the build did not record (binary, or over its limit) is no empty file: a diff
    // against nothing would show every line added or removed. Only an added file has no
    // before, a deleted one no after, and a path that was no file before no text before.
    let was_file = c.previous.as_ref().is_none_or(|p| p.file_type == FileType::File);
    let missing = match c.kind {
        ChangeKind::Added => content.after.is_none().then_some("after"),
        ChangeKind::Deleted => content.before.is_none().then_some("before"),
        ChangeKind::Modified if content.before.is_none() && was_file => Some("before"),
        ChangeKind::Modified => content.after.is_none().then_some("after"),
    };
    if let Some(side) = missing {
        return note(
            format!(
                "content {side} the step not recorded (binary, or over the size the build records): compare the \
                 sizes and digests above"
            ),
            theme.dim,
        );
    }
    let before = content.before.as_deref().filter(|s| diff::is_text(s));
    let after = content.after.as_deref().filter(|s| diff::is_text(s));
    let binary = content.before.as_deref().is_some_and(|s| !diff::is_text(s))
        || content.after.as_deref().is_some_and(|s| !diff::is_text(s));
    if binary {
        return note("binary content: compare the sizes and digests above".into(), theme.dim);
    }
    let lines = diff::diff(before, after);
    let (added, removed) = diff::stats(&lines);
    let mut out = vec![Line::from(vec![
        Span::styled("content ", theme.header),
        Span::styled(format!("+{added}"), theme.diff_add),
        Span::raw(" "),
        Span::styled(format!("-{removed}"), theme.diff_del),
    ])];
    if lines.is_empty() {
        out.push(Line::from(Span::styled("same content (only metadata changed)", theme.dim)));
    }
    let num = |n: usize| if n == 0 { "    ".to_string() } else { format::fit_right(&n.to_string(), 4) };
    for l in lines {
        out.push(match l {
            DiffLine::Context { old, new, text } => Line::from(vec![
                Span::styled(format!("{}{} ", num(old), num(new)), theme.line_number),
                Span::styled(format!("  {}", format::sanitize(&text)), theme.diff_context),
            ]),
            DiffLine::Removed { old, segments } => {
                let mut spans = vec![
                    Span::styled(format!("{}{} ", num(old), num(0)), theme.line_number),
                    Span::styled("- ", theme.diff_del),
                ];
                for (emph, s) in segments {
                    spans.push(Span::styled(
                        format::sanitize(&s),
                        if emph { theme.diff_del_emph } else { theme.diff_del },
                    ));
                }
                Line::from(spans)
            }
            DiffLine::Added { new, segments } => {
                let mut spans = vec![
                    Span::styled(format!("{}{} ", num(0), num(new)), theme.line_number),
                    Span::styled("+ ", theme.diff_add),
                ];
                for (emph, s) in segments {
                    spans.push(Span::styled(
                        format::sanitize(&s),
                        if emph { theme.diff_add_emph } else { theme.diff_add },
                    ));
                }
                Line::from(spans)
            }
            DiffLine::Skipped { lines } => {
                Line::from(Span::styled(format!("        ⋯ {lines} unchanged line(s)"), theme.dim))
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::{Digest, PrevMeta};

    fn text(lines: &[Line<'_>]) -> String {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A file modified in nothing the change records (an xattr alone, say) says so, rather than
    /// show identical rows as if they were the change.
    #[test]
    fn a_change_in_nothing_recorded_says_so() {
        let digest = Digest::try_from(format!("sha256:{}", "ab".repeat(32))).unwrap();
        let mut c = Change {
            path: "/x.bin".into(),
            kind: ChangeKind::Modified,
            file_type: FileType::File,
            size: 3,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 7,
            link_target: None,
            digest: Some(digest.clone()),
            opaque: false,
            previous: Some(Box::new(PrevMeta {
                file_type: FileType::File,
                size: 3,
                mode: 0o644,
                uid: 0,
                gid: 0,
                link_target: None,
                digest: Some(digest),
                mtime: Some(7),
            })),
        };
        let said = |c: &Change| text(&metadata(c, false, &Theme::dark(), 200)).contains("what did is not recorded");
        assert!(said(&c));
        c.mode = 0o600;
        assert!(!said(&c), "a mode that changed is the change");
        c.mode = 0o644;
        c.previous.as_mut().unwrap().digest = None;
        assert!(!said(&c), "content not compared may be what changed");
    }
}
