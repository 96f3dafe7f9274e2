//! The Files pane, as in dive: the whole file system of the image at the selected step (every
//! layer up to and including the step's, whiteouts and opaque directories applied), or with
//! `a` only what the step changed; each path with its size and the layer that last wrote it,
//! and in the header the image's efficiency (bytes kept / bytes shipped, see
//! [`merged`](crate::tui::model::merged)); in a build for several platforms, of the selected
//! step's platform's image (the one the Steps pane shows for a step of a shared stage).
//!
//! Stacking every layer is too slow to do on every frame for a base image of 10,000 files: the
//! pane keeps the stack and the tree and rebuilds them when the selected step or what the
//! build reported changes ([`FilesPane::sync`]); drawing only reads them.

use std::collections::{HashMap, HashSet};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, InputTarget, Motion, Outcome, Severity, View as PaneView, scroll_for};
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::model::Model;
use crate::tui::model::merged::{self, Merged};
use crate::tui::model::tree::{ChangeTree, Row, Sort};
use crate::tui::model::waste;
use crate::tui::theme::Theme;
use trowel_events::state::StepState;
use trowel_events::{ChangeKind, FileType, StepId};

#[derive(Debug, Clone, Default)]
pub struct FilesPane {
    cursor: usize,
    scroll: usize,
    /// Only the selected step's changes (`a` toggles).
    changes_only: bool,
    collapsed: HashSet<String>,
    sort: Sort,
    filter: String,
    /// What the stack was built from (`None`: build it again).
    built: Option<Key>,
    /// The file system at the selected step.
    merged: Merged,
    /// The whole image's stack, for its efficiency.
    image: Merged,
    /// How the selected step changed each path it changed.
    step_kinds: HashMap<String, ChangeKind>,
    tree: ChangeTree,
    rows: Vec<Row>,
}

/// What the stack depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    step: Option<StepId>,
    changes_only: bool,
    reported: usize,
    /// The stage whose image the efficiency is of (a build for several platforms has one per
    /// platform).
    image: Option<usize>,
}

/// The target platform whose image the efficiency is of: the selected step's, when its stage
/// is built for one target; else the one the Steps pane shows (`None`: the last platform's).
fn image_platform(ctx: &Ctx) -> Option<String> {
    let stage = ctx.step.and_then(|s| ctx.model.stage(s.id.stage));
    match stage.map(|s| s.targets.as_slice()) {
        Some([one]) => Some(one.clone()),
        _ => ctx.platform.clone(),
    }
}

/// A count that grows with everything the stack is made of (changes, layers, shell sessions,
/// base listings), so that a stack built from less is built again.
fn reported(model: &Model) -> usize {
    let steps: usize = model
        .steps()
        .map(|s| {
            // A shell session counts again once kept (its changes become a layer then).
            let shells: usize =
                s.shells.iter().map(|sh| 1 + sh.changes.len() + usize::from(sh.kept == Some(true))).sum();
            1 + s.changes.len() + shells + usize::from(s.layer.is_some())
        })
        .sum();
    let bases: usize = model
        .stages
        .iter()
        .map(|s| 1 + s.base_listings.len() + usize::from(s.source.is_some()) + s.base_layers.len())
        .sum();
    steps + bases
}

impl FilesPane {
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn changes_only(&self) -> bool {
        self.changes_only
    }

    /// The file system at the selected step.
    pub fn merged(&self) -> &Merged {
        &self.merged
    }

    /// The whole image's layers (for its efficiency).
    pub fn image(&self) -> &Merged {
        &self.image
    }

    /// The path under the cursor.
    pub fn selected_path(&self) -> Option<&str> {
        self.rows.get(self.cursor).map(|r| self.tree.nodes[r.node].path.as_str())
    }

    /// The visible rows' paths with their depth (for tests).
    pub fn visible(&self) -> Vec<(usize, &str)> {
        self.rows.iter().map(|r| (r.depth, self.tree.nodes[r.node].path.as_str())).collect()
    }

    /// Builds the stack and the tree again if the selected step or what the build reported
    /// changed.
    pub fn sync(&mut self, ctx: &Ctx) {
        let platform = image_platform(ctx);
        let image = waste::image_stages_for(ctx.model, platform.as_deref()).last().copied();
        let key =
            Key { step: ctx.selected_id(), changes_only: self.changes_only, reported: reported(ctx.model), image };
        if self.built == Some(key) {
            return;
        }
        let same_step = self.built.is_some_and(|b| b.step == key.step && b.changes_only == key.changes_only);
        self.merged = merged::at(ctx.model, key.step);
        self.image = merged::image(ctx.model, platform.as_deref());
        let step_changes = ctx.step.map(|s| s.changes.as_slice()).unwrap_or(&[]);
        self.step_kinds = step_changes.iter().map(|c| (c.path.clone(), c.kind)).collect();
        self.tree =
            if self.changes_only { ChangeTree::build(step_changes) } else { ChangeTree::build(&self.merged.changes()) };
        if !same_step {
            self.cursor = 0;
            self.scroll = 0;
            self.collapsed.clear();
        }
        self.built = Some(key);
        self.update_rows();
    }

    /// The filter typed so far.
    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.cursor = 0;
        self.update_rows();
    }

    fn update_rows(&mut self) {
        self.rows = self.tree.rows(&self.collapsed, self.sort, &self.filter);
    }

    fn current(&self) -> Option<(String, Option<bool>, usize)> {
        let r = self.rows.get(self.cursor)?;
        Some((self.tree.nodes[r.node].path.clone(), r.expanded, r.depth))
    }
}

impl Component for FilesPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        if let Some(m) = Motion::of(action, ctx.page) {
            self.cursor = m.clamped(self.cursor, self.rows.len());
            return Outcome::Done;
        }
        match action {
            Action::Scope => {
                self.changes_only = !self.changes_only;
                self.built = None;
                self.cursor = 0;
                self.scroll = 0;
                self.sync(ctx);
                let text =
                    if self.changes_only { "only the step's changes" } else { "the whole file system at the step" };
                return Outcome::Say(format!("Files: {text}"), Severity::Info);
            }
            Action::Collapse => match self.current() {
                Some((path, Some(true), _)) => {
                    self.collapsed.insert(path);
                    self.update_rows();
                }
                Some((_, _, depth)) if depth > 0 => {
                    if let Some(i) = self.rows[..self.cursor].iter().rposition(|r| r.depth < depth) {
                        self.cursor = i;
                    }
                }
                _ => {}
            },
            Action::Expand | Action::Toggle => {
                if let Some((path, Some(open), _)) = self.current() {
                    if open && action == Action::Toggle {
                        self.collapsed.insert(path);
                    } else {
                        self.collapsed.remove(&path);
                    }
                    self.update_rows();
                }
            }
            Action::CollapseAll => {
                self.collapsed.extend(self.tree.directories().map(str::to_string));
                self.cursor = 0;
                self.update_rows();
            }
            Action::ExpandAll => {
                self.collapsed.clear();
                self.update_rows();
            }
            Action::Sort => {
                self.sort = self.sort.toggle();
                self.cursor = 0;
                self.update_rows();
            }
            Action::Filter => return Outcome::Input(InputTarget::FilesFilter, self.filter.clone()),
            Action::Close if !self.filter.is_empty() => {
                self.filter.clear();
                self.update_rows();
            }
            Action::Open => {
                let Some((path, _, _)) = self.current() else { return Outcome::Done };
                if self.step_kinds.contains_key(&path) {
                    return Outcome::OpenFile(path);
                }
                let by = self.merged.entries.get(&path).map(|e| self.merged.layers[e.layer].label.clone());
                return Outcome::Say(
                    match by {
                        Some(by) => format!("{path} is not changed by this step: {by} wrote it"),
                        None => format!("{path}: a directory this step did not change"),
                    },
                    Severity::Info,
                );
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Done
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> PaneView {
        let width = area.width as usize;
        let mut lines = header(self, ctx, theme, width);
        let height = (area.height as usize).saturating_sub(lines.len());
        let cursor = self.cursor.min(self.rows.len().saturating_sub(1));
        let scroll = scroll_for(cursor, self.scroll, height, self.rows.len());
        let by_w = 12.min(width / 4);
        for (i, r) in self.rows.iter().enumerate().skip(scroll).take(height) {
            let node = &self.tree.nodes[r.node];
            let (mark, mark_style) = match self.step_kinds.get(&node.path) {
                // Listed from a cached layer alone: added or modified, not known which.
                Some(ChangeKind::Added) if ctx.unclassified() => ("±", theme.modified),
                Some(ChangeKind::Added) => ("A", theme.added),
                Some(ChangeKind::Modified) => ("M", theme.modified),
                Some(ChangeKind::Deleted) => ("D", theme.deleted),
                None => (" ", theme.dim),
            };
            let arrow = match r.expanded {
                Some(true) => "▾ ",
                Some(false) => "▸ ",
                None => "  ",
            };
            let entry = self.merged.entries.get(&node.path);
            let by = entry.map(|e| self.merged.layers[e.layer].label.as_str()).unwrap_or("");
            // A link has no content of its own: a hard link's bytes are its first name's (a size
            // of 0 read as an empty file), a symlink's are its target. Named as the Changes pane
            // names them.
            let link = entry.map(|e| &e.change).and_then(|c| match c.file_type {
                FileType::Hardlink => Some(("⇒", c.link_target.as_deref())),
                FileType::Symlink => Some(("→", c.link_target.as_deref())),
                _ => None,
            });
            // A path this step deleted is not in the file system shown: no size (it read `0B`,
            // as if an empty file were left).
            let gone = entry.is_none() && self.step_kinds.get(&node.path) == Some(&ChangeKind::Deleted);
            let size = match (link, entry.map(|e| e.change.file_type)) {
                _ if gone => String::new(),
                (None, Some(FileType::File | FileType::Dir) | None) => format::bytes_compact(node.size),
                _ => String::new(),
            };
            let name_w = width.saturating_sub(2 + 7 + by_w + 1);
            let mut name = format!("{}{arrow}{}", "  ".repeat(r.depth), node.name);
            if let Some((arrow, target)) = link {
                name.push_str(&format!(" {arrow} {}", target.unwrap_or("?")));
            }
            let mut line = Line::from(vec![
                Span::styled(format!("{mark} "), mark_style),
                Span::styled(format::fit(&name, name_w), theme.text),
                Span::styled(format::fit_right(&size, 7), theme.dim),
                Span::raw(" "),
                Span::styled(format::fit(by, by_w), theme.dim),
            ]);
            if i == cursor {
                line = line.patch_style(theme.selection);
            }
            lines.push(line);
        }
        frame.render_widget(Paragraph::new(lines), area);
        PaneView::Files(View { cursor, scroll })
    }

    fn drawn(&mut self, view: PaneView) {
        if let PaneView::Files(v) = view {
            self.cursor = v.cursor;
            self.scroll = v.scroll;
        }
    }
}

fn header<'a>(pane: &FilesPane, ctx: &Ctx, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let at = ctx.step.map(|s| format!("L{} {}", s.line, s.keyword)).unwrap_or_else(|| "no step".into());
    let what = if pane.changes_only { "changes of" } else { "file system at" };
    let m = &pane.merged;
    let (files, bytes) = if pane.changes_only {
        let changes = ctx.step.map(|s| s.changes.as_slice()).unwrap_or(&[]);
        let written = changes
            .iter()
            .filter(|c| c.kind != ChangeKind::Deleted && c.file_type == trowel_events::FileType::File)
            .map(|c| c.size)
            .sum();
        (changes.len(), written)
    } else {
        (m.entries.len(), m.kept())
    };
    let mut first = format!("{what} {at}: {files} paths, {}", format::bytes(bytes));
    if let Some(text) = ctx.typing(InputTarget::FilesFilter) {
        first.push_str(&format!(" /{text}▏"));
    } else if !pane.filter.is_empty() {
        first.push_str(&format!(" /{}", pane.filter));
    }
    out.push(Line::from(Span::styled(format::truncate(&first, width), theme.header)));
    // With --single-snapshot a step before the stage's last has no snapshot of its own: what is
    // shown is the stage before that one snapshot, without what the step did.
    if let Some(s) = ctx.step.filter(|s| ctx.model.single_snapshot && s.state == StepState::Built && s.stats.is_none())
    {
        let last = ctx
            .model
            .stage(s.id.stage)
            .and_then(|st| st.steps.iter().filter_map(|id| ctx.model.step(*id)).find(|x| x.stage_snapshot.is_some()))
            .map(|x| format!(" (at L{})", x.line))
            .unwrap_or_default();
        let text = format!(
            "⚠ --single-snapshot: L{} has no snapshot of its own; shown is the stage before its one snapshot{last}",
            s.line
        );
        for l in format::wrap(&text, width) {
            out.push(Line::from(Span::styled(l, theme.status_warn)));
        }
    }
    let img = &pane.image;
    let eff = format!(
        "image efficiency {:.1}%: {} kept of {} shipped, {} wasted",
        img.efficiency() * 100.0,
        format::bytes(img.kept()),
        format::bytes(img.shipped()),
        format::bytes(img.shipped().saturating_sub(img.kept())),
    );
    out.push(Line::from(Span::styled(format::truncate(&eff, width), theme.dim)));
    if !m.unknown.is_empty() || !img.unknown.is_empty() {
        let unknown = if m.unknown.is_empty() { &img.unknown } else { &m.unknown };
        let more = if unknown.len() > 1 { format!(" (+{} more)", unknown.len() - 1) } else { String::new() };
        let text = format!("⚠ not shown nor counted: {}{more}", unknown[0]);
        out.push(Line::from(Span::styled(format::truncate(&text, width), theme.status_warn)));
        if ctx.mode == crate::tui::app::Mode::Replay {
            let text = "  a trace has them with trowel build --trace-base-listings";
            out.push(Line::from(Span::styled(format::truncate(text, width), theme.dim)));
        }
    }
    if pane.rows.is_empty() {
        let text = if pane.changes_only { "the step changed no file" } else { "no files known at this step" };
        out.push(Line::from(Span::styled(text, theme.dim)));
    }
    out
}

/// What a frame of the pane showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub cursor: usize,
    pub scroll: usize,
}
