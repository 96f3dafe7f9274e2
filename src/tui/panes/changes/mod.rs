//! The Changes pane: the selected step's added, modified and deleted paths as a collapsible
//! tree with sizes (cumulative per directory), sortable by name or size and filterable with
//! `/`, under a header with the counts and the snapshot's statistics.
//!
//! The pane keeps the tree and its visible rows: a step of 100,000 changed files has as many
//! rows, too many to rebuild or re-sort on every frame and every key. The rows are recomputed
//! when the sort, the filter or what is collapsed changes, and the tree when what the pane shows
//! does ([`ChangesPane::sync`], which the app calls after every message); drawing only reads
//! them. Drawing is in render.rs.

use std::collections::HashSet;

use super::{Component, Ctx, InputTarget, Motion, Outcome, View as PaneView};
use crate::tui::keymap::Action;
use crate::tui::model::tree::{ChangeTree, Row, Sort};
use crate::tui::theme::Theme;
use trowel_events::StepId;

mod render;

pub use render::kind;

#[derive(Debug, Clone, Default)]
pub struct ChangesPane {
    cursor: usize,
    /// First visible row.
    scroll: usize,
    /// Directories whose children are hidden.
    collapsed: HashSet<String>,
    sort: Sort,
    filter: String,
    /// What the tree was built from (`None`: build it again).
    shows: Option<Shows>,
    tree: ChangeTree,
    /// The visible rows of the tree.
    rows: Vec<Row>,
    /// Screen row → tree row, as last drawn.
    hits: Vec<(u16, usize)>,
}

/// What a tree was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shows {
    step: Option<StepId>,
    count: usize,
    /// A shell session's changes rather than the step's.
    shell: bool,
}

/// What a frame of the pane showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub cursor: usize,
    pub scroll: usize,
    pub hits: Vec<(u16, usize)>,
}

/// The tree row under the cursor.
struct Current {
    path: String,
    /// For a directory with children: whether they are shown.
    expanded: Option<bool>,
    depth: usize,
    /// The path changed itself (it is not only a parent of changes).
    changed: bool,
}

impl ChangesPane {
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn sort(&self) -> Sort {
        self.sort
    }

    /// The path of the row under the cursor.
    pub fn selected_path(&self) -> Option<&str> {
        self.rows.get(self.cursor).map(|r| self.tree.nodes[r.node].path.as_str())
    }

    /// The tree of the shown changes.
    pub fn tree(&self) -> &ChangeTree {
        &self.tree
    }

    /// The visible rows of the tree.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Screen row → tree row, as last drawn.
    pub fn hits(&self) -> &[(u16, usize)] {
        &self.hits
    }

    /// Builds the tree again if what the pane shows changed (another step, the step's
    /// snapshot arrived, a shell session's changes), and the rows with it.
    pub fn sync(&mut self, ctx: &Ctx) {
        let shows = Shows { step: ctx.selected_id(), count: ctx.changes.len(), shell: ctx.shell };
        if self.shows != Some(shows) {
            self.tree = ChangeTree::build(ctx.changes);
            self.shows = Some(shows);
            self.update_rows();
        }
    }

    /// Forgets the tree (another list of the same length may replace the shown one).
    pub fn invalidate(&mut self) {
        self.shows = None;
    }

    /// Another step is selected: start at the top with everything expanded.
    pub fn step_changed(&mut self) {
        self.to_top();
        self.collapsed.clear();
        self.invalidate();
    }

    pub fn to_top(&mut self) {
        self.cursor = 0;
        self.scroll = 0;
    }

    /// The filter typed so far.
    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.to_top();
        self.update_rows();
    }

    fn update_rows(&mut self) {
        self.rows = self.tree.rows(&self.collapsed, self.sort, &self.filter);
    }

    fn current(&self) -> Option<Current> {
        let row = self.rows.get(self.cursor)?;
        let node = &self.tree.nodes[row.node];
        Some(Current {
            path: node.path.clone(),
            expanded: row.expanded,
            depth: row.depth,
            changed: node.change.is_some(),
        })
    }

    fn collapse(&mut self) {
        let Some(c) = self.current() else { return };
        if c.expanded == Some(true) {
            self.collapsed.insert(c.path);
            self.update_rows();
        } else if c.depth > 0 {
            // Go to the parent directory's row.
            if let Some(i) = self.rows[..self.cursor].iter().rposition(|r| r.depth < c.depth) {
                self.cursor = i;
            }
        }
    }

    fn toggle(&mut self) {
        if let Some(Current { path, expanded: Some(open), .. }) = self.current() {
            if open {
                self.collapsed.insert(path);
            } else {
                self.collapsed.remove(&path);
            }
            self.update_rows();
        }
    }

    fn open(&mut self) -> Outcome {
        let Some(c) = self.current() else { return Outcome::Done };
        if c.changed {
            // A changed directory shows its metadata; its children stay in the tree.
            Outcome::OpenFile(c.path)
        } else {
            self.toggle();
            Outcome::Done
        }
    }
}

impl Component for ChangesPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        if let Some(m) = Motion::of(action, ctx.page) {
            self.cursor = m.clamped(self.cursor, self.rows.len());
            return Outcome::Done;
        }
        match action {
            Action::Collapse => self.collapse(),
            Action::Expand => {
                if let Some(Current { path, expanded: Some(false), .. }) = self.current() {
                    self.collapsed.remove(&path);
                    self.update_rows();
                }
            }
            Action::Toggle => self.toggle(),
            Action::Open => return self.open(),
            Action::Filter => return Outcome::Input(InputTarget::ChangesFilter, self.filter.clone()),
            Action::Sort => {
                self.sort = self.sort.toggle();
                self.to_top();
                self.update_rows();
            }
            Action::CollapseAll => {
                self.collapsed.extend(self.tree.directories().map(str::to_string));
                self.to_top();
                self.update_rows();
            }
            Action::ExpandAll => {
                self.collapsed.clear();
                self.update_rows();
            }
            Action::Close if !self.filter.is_empty() => {
                self.filter.clear();
                self.update_rows();
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Done
    }

    /// A click selects a row; a second one on the selected row opens it.
    fn click(&mut self, row: u16, ctx: &Ctx) -> Outcome {
        let Some(&(_, i)) = self.hits.iter().find(|(r, _)| *r == row) else { return Outcome::Done };
        if self.cursor == i {
            return self.handle(Action::Open, ctx);
        }
        self.cursor = i;
        Outcome::Done
    }

    fn render(&self, frame: &mut ratatui::Frame, area: ratatui::layout::Rect, ctx: &Ctx, theme: &Theme) -> PaneView {
        PaneView::Changes(render::render(self, frame, area, ctx, theme))
    }

    fn drawn(&mut self, view: PaneView) {
        if let PaneView::Changes(v) = view {
            self.cursor = v.cursor;
            self.scroll = v.scroll;
            self.hits = v.hits;
        }
    }
}
