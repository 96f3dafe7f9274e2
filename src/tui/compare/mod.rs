//! The compare view, `trowel replay A.jsonl --compare B.jsonl`: the steps of both builds with
//! a marker per difference, and a pane naming the differences of the selected step (why its
//! keys differ, which files of its layers differ, how far each build got).
//!
//! A view of its own rather than a pane of the debugger: it shows two builds where every
//! debugger pane shows one, and it is read-only and offline. Its state is a small reducer
//! (keys in, nothing out but "quit"), tested without a terminal; `draw` renders it and `run`
//! is its event loop. What it shows is [`crate::compare`]'s, the same facts as the `--summary`
//! text.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::compare::{Comparison, Row};

mod draw;
mod run;

pub use draw::draw;
pub use run::run_compare;

/// Which pane keys move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Steps,
    Detail,
}

/// Every key of the compare view, with its hint (the hint bar and the tests use this table).
pub const KEYS: &[(&str, &str)] =
    &[("j/k", "move"), ("n/N", "next/prev difference"), ("d", "differences only"), ("tab", "focus"), ("q", "quit")];

/// The compare view's state.
#[derive(Debug, Clone)]
pub struct CompareView {
    pub comparison: Comparison,
    /// Index into [`CompareView::visible`].
    pub selected: usize,
    /// Show only the steps that differ.
    pub only_differences: bool,
    pub focus: Focus,
    /// First line of the detail pane shown.
    pub detail_scroll: usize,
}

impl CompareView {
    /// Opens on the first step that differs (the first step when none does).
    pub fn new(comparison: Comparison) -> CompareView {
        let selected = comparison.rows.iter().position(Row::differs).unwrap_or(0);
        CompareView { comparison, selected, only_differences: false, focus: Focus::Steps, detail_scroll: 0 }
    }

    /// The rows shown, as indices into the comparison's rows.
    pub fn visible(&self) -> Vec<usize> {
        (0..self.comparison.rows.len())
            .filter(|i| !self.only_differences || self.comparison.rows[*i].differs())
            .collect()
    }

    /// The selected row.
    pub fn row(&self) -> Option<&Row> {
        self.visible().get(self.selected).map(|i| &self.comparison.rows[*i])
    }

    fn select(&mut self, i: usize) {
        if i != self.selected {
            self.detail_scroll = 0;
        }
        self.selected = i;
    }

    /// Moves to the next (or previous) differing step.
    fn jump(&mut self, forward: bool) {
        let vis = self.visible();
        let differs = |i: &usize| self.comparison.rows[vis[*i]].differs();
        let found =
            if forward { (self.selected + 1..vis.len()).find(differs) } else { (0..self.selected).rev().find(differs) };
        if let Some(i) = found {
            self.select(i);
        }
    }

    /// Handles a key; `true` means quit.
    pub fn key(&mut self, k: KeyEvent) -> bool {
        let n = self.visible().len();
        match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return true,
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return true,
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = if self.focus == Focus::Steps { Focus::Detail } else { Focus::Steps };
            }
            KeyCode::Char('d') => {
                // Keep the same step selected when it stays visible.
                let current = self.visible().get(self.selected).copied();
                self.only_differences = !self.only_differences;
                let vis = self.visible();
                let i = current.and_then(|c| vis.iter().position(|v| *v == c)).unwrap_or(0);
                self.select(i.min(vis.len().saturating_sub(1)));
            }
            KeyCode::Char('n') => self.jump(true),
            KeyCode::Char('N') => self.jump(false),
            KeyCode::Down | KeyCode::Char('j') => match self.focus {
                Focus::Steps => self.select((self.selected + 1).min(n.saturating_sub(1))),
                Focus::Detail => self.detail_scroll += 1,
            },
            KeyCode::Up | KeyCode::Char('k') => match self.focus {
                Focus::Steps => self.select(self.selected.saturating_sub(1)),
                Focus::Detail => self.detail_scroll = self.detail_scroll.saturating_sub(1),
            },
            KeyCode::PageDown => self.detail_scroll += 10,
            KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(n.saturating_sub(1)),
            _ => {}
        }
        false
    }

    /// `2 of 9 steps differ` or `equivalent`, as the top bar says it.
    pub fn verdict(&self) -> String {
        let c = &self.comparison;
        if c.equivalent() {
            "equivalent".to_string()
        } else {
            let n = c.differing().count();
            let ended = if c.ending.is_some() { ", ended differently" } else { "" };
            format!("{n} of {} steps differ{ended}", c.rows.len())
        }
    }
}
