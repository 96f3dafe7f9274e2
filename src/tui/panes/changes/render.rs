//! Drawing the Changes pane from its state: the header, then the visible rows of the tree
//! around the cursor.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{ChangesPane, View};
use crate::tui::app::{InputTarget, Mode};
use crate::tui::format;
use crate::tui::model::StepState;
use crate::tui::panes::{Ctx, scroll_for, wrap};
use crate::tui::theme::Theme;
use trowel_events::{Change, ChangeKind, FileType};

/// The one-letter kind of a change and its style. In an `unclassified` listing a path in the
/// layer may have been added or modified: `±`, never a guess.
pub fn kind(c: &Change, unclassified: bool, theme: &Theme) -> (&'static str, Style) {
    match c.kind {
        ChangeKind::Added if unclassified => ("±", theme.modified),
        ChangeKind::Added => ("A", theme.added),
        ChangeKind::Modified => ("M", theme.modified),
        ChangeKind::Deleted => ("D", theme.deleted),
    }
}

pub(super) fn render(pane: &ChangesPane, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> View {
    let rows = &pane.rows;
    let head_rows = header(pane, ctx, theme, area.width as usize).len();
    let height = (area.height as usize).saturating_sub(head_rows);
    let cursor = pane.cursor.min(rows.len().saturating_sub(1));
    let scroll = scroll_for(cursor, pane.scroll, height, rows.len());
    let view = View { cursor, scroll, hits: Vec::new() };
    let (lines, hits) = lines(pane, &view, ctx, area, theme);
    frame.render_widget(Paragraph::new(lines), area);
    View { hits, ..view }
}

fn header<'a>(pane: &ChangesPane, ctx: &Ctx, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let changes = ctx.changes;
    let count = |k: ChangeKind| changes.iter().filter(|c| c.kind == k).count();
    let added: u64 =
        changes.iter().filter(|c| c.kind != ChangeKind::Deleted && c.file_type == FileType::File).map(|c| c.size).sum();
    let counts = if ctx.unclassified() {
        vec![Span::styled(format!("±{}", count(ChangeKind::Added)), theme.modified)]
    } else {
        vec![
            Span::styled(format!("+{}", count(ChangeKind::Added)), theme.added),
            Span::raw(" "),
            Span::styled(format!("~{}", count(ChangeKind::Modified)), theme.modified),
        ]
    };
    let mut first = vec![Span::styled(if ctx.shell { "shell: " } else { "" }, theme.status_warn)];
    first.extend(counts);
    first.extend([
        Span::raw(" "),
        Span::styled(format!("-{}", count(ChangeKind::Deleted)), theme.deleted),
        Span::styled(format!(" · {} written", format::bytes(added)), theme.dim),
    ]);
    let sort = format!(" · by {}", pane.sort.label());
    first.push(Span::styled(sort, theme.dim));
    if let Some(text) = ctx.typing(InputTarget::ChangesFilter) {
        first.push(Span::styled(format!(" /{text}▏"), theme.search_match));
    } else if !pane.filter.is_empty() {
        first.push(Span::styled(format!(" /{}", pane.filter), theme.search_match));
    }
    let mut lines = vec![Line::from(first)];
    let stats = ctx.step.and_then(|s| s.stats.clone()).filter(|_| !ctx.shell);
    if let Some(s) = ctx.step.filter(|_| !ctx.shell)
        && let Some(from) = s.stage_snapshot
    {
        let text = format!(
            "the stage's single snapshot (--single-snapshot): what lines {from}–{} changed together, not this step alone",
            s.line
        );
        for l in wrap(&text, width) {
            lines.push(Line::from(Span::styled(l, theme.status_warn)));
        }
    }
    if ctx.unclassified() {
        let text = "listed from the layer, not compared with the layers below: ± added or modified, \
                    - deleted (what it was is not known)";
        for l in wrap(text, width) {
            lines.push(Line::from(Span::styled(l, theme.dim)));
        }
    } else if let Some(st) = stats {
        let text = format!(
            "snapshot: {} paths walked, {} compared, {}",
            st.files_walked,
            format::bytes(st.bytes_hashed),
            format::duration_ms(st.duration_ms)
        );
        lines.push(Line::from(Span::styled(format::truncate(&text, width), theme.dim)));
    }
    if let Some(line) = ctx.step.filter(|_| !ctx.shell).and_then(|s| mount_check(s, theme, width)) {
        lines.push(line);
    }
    lines
}

/// For a step with mounts whose layer is known: that nothing at or under a mount target
/// reached it, or what did.
fn mount_check<'a>(step: &trowel_events::state::StepView, theme: &Theme, width: usize) -> Option<Line<'a>> {
    let known = step.stats.is_some() || !step.changes.is_empty();
    if step.mounts.iter().all(|m| m.target.is_none()) || !known || !step.state.is_done() {
        return None;
    }
    let leaks = step.mount_leaks();
    let leaked: Vec<&str> = leaks.iter().flat_map(|(_, paths)| paths.iter().copied()).collect();
    let targets: Vec<&str> = leaks.iter().map(|(t, _)| *t).collect();
    let (text, style) = if leaked.is_empty() {
        (format!("mounts ✓ nothing at or under {} is in the layer", targets.join(", ")), theme.added)
    } else {
        (
            format!("mounts ✗ {} path(s) under a mount target in the layer: {}", leaked.len(), leaked.join(", ")),
            theme.status_err,
        )
    };
    Some(Line::from(Span::styled(format::truncate(&text, width), style)))
}

/// Why a step shows no changes.
fn empty_reason(ctx: &Ctx) -> String {
    let Some(s) = ctx.step else { return "no step selected".into() };
    if ctx.pause.is_some_and(|p| p.at.id == s.id && p.at.report.is_none()) {
        return "paused before this step ran: n runs it (the previous step's changes are one row up)".into();
    }
    match s.state {
        StepState::Pending => "not run yet".into(),
        StepState::Running if ctx.mode == Mode::Replay => {
            "the trace ends while this step was running: no changes were recorded".into()
        }
        StepState::Running => "running: changes appear when the step's snapshot is taken".into(),
        StepState::Skipped => "skipped: the target does not need this stage".into(),
        StepState::Deferred => match s.ran_later {
            // A later step read the stage after all: the step ran then, into that step's root.
            Some((by, ms)) => format!(
                "deferred: the cache missed it, but nothing needed its layer when its turn came, so it did not run then; \
                 it ran later, into the root {} read from this stage ({} of that step's time); its changes are in \
                 no layer of its own",
                ctx.model.step(by).map_or_else(|| "a later step".to_string(), |b| format!("line {}", b.line)),
                crate::tui::format::duration_ms(ms)
            ),
            None => "deferred: the cache missed it, but nothing needed its layer (every later step of its stage hit, or was not run either), so it did not run".into(),
        },
        StepState::Metadata => "changed only the image config (no files)".into(),
        StepState::Failed => "failed before its snapshot: no changes were recorded".into(),
        // A cache entry without a layer: the step changed no files when it ran.
        StepState::Cached if s.layer.is_none() => "served from the cache: it changed no files (no layer)".into(),
        StepState::Cached if s.stats.is_none() => "served from the cache; its paths were not listed".into(),
        // What it changed is in the stage's one snapshot, reported by its last step.
        StepState::Built if ctx.model.single_snapshot && s.stats.is_none() => {
            "not snapshotted on its own: with --single-snapshot the stage's changes are one snapshot, shown at its last step"
                .into()
        }
        _ => "changed no files".into(),
    }
}

/// The pane's lines, and the screen row of each tree row shown.
fn lines<'a>(
    pane: &ChangesPane,
    view: &View,
    ctx: &Ctx,
    area: Rect,
    theme: &Theme,
) -> (Vec<Line<'a>>, Vec<(u16, usize)>) {
    let width = area.width as usize;
    let changes = ctx.changes;
    let mut lines = header(pane, ctx, theme, width);
    let head_rows = lines.len();
    let mut hits = Vec::new();
    if changes.is_empty() {
        for l in wrap(&empty_reason(ctx), width) {
            lines.push(Line::from(Span::styled(l, theme.dim)));
        }
        return (lines, hits);
    }
    let rows = &pane.rows;
    if rows.is_empty() {
        lines.push(Line::from(Span::styled("no path matches the filter (esc clears it)", theme.dim)));
    }
    let tree = &pane.tree;
    let height = (area.height as usize).saturating_sub(head_rows);
    let (scroll, cursor) = (view.scroll, view.cursor);
    let size_w = 10;
    for (i, row) in rows.iter().enumerate().skip(scroll).take(height) {
        let node = &tree.nodes[row.node];
        let change = node.change.map(|k| &changes[k]);
        let arrow = match row.expanded {
            Some(true) => "▾",
            Some(false) => "▸",
            None => " ",
        };
        let (k, kstyle) = change.map_or((" ", theme.dim), |c| kind(c, ctx.unclassified(), theme));
        let is_dir = !node.children.is_empty() || change.is_some_and(|c| c.file_type == FileType::Dir);
        let mut name = node.name.clone();
        if is_dir {
            name.push('/');
        }
        if let Some(c) = change
            && let Some(t) = &c.link_target
            && c.kind != ChangeKind::Deleted
        {
            let arrow = if c.file_type == FileType::Hardlink { "⇒" } else { "→" };
            name.push_str(&format!(" {arrow} {t}"));
        }
        let size = match change {
            Some(c) if c.kind == ChangeKind::Deleted => String::new(),
            Some(c) if c.file_type == FileType::File => format::bytes(c.size),
            _ if node.size > 0 => format::bytes(node.size),
            _ => String::new(),
        };
        let indent = "  ".repeat(row.depth);
        let name_w = width.saturating_sub(indent.len() + 3 + size_w);
        let name_style = match change {
            Some(c) if c.kind == ChangeKind::Deleted => theme.deleted,
            _ if is_dir => theme.header,
            _ => theme.text,
        };
        let mut line = Line::from(vec![
            Span::raw(indent),
            Span::styled(arrow, theme.dim),
            Span::styled(k, kstyle),
            Span::raw(" "),
            Span::styled(format::fit(&format::sanitize(&name), name_w), name_style),
            Span::styled(format::fit_right(&size, size_w), theme.dim),
        ]);
        if i == cursor {
            line = line.patch_style(theme.selection);
        }
        hits.push((area.y + (head_rows + i - scroll) as u16, i));
        lines.push(line);
    }
    (lines, hits)
}
