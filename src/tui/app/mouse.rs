//! Mouse: a click focuses the pane under it and selects the row; the wheel scrolls the pane
//! under the pointer (three rows a notch).

use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::{App, Pane, Popup};
use crate::tui::keymap::Action;

const WHEEL_ROWS: isize = 3;

fn inside(r: Rect, x: u16, y: u16) -> bool {
    r.contains(Position { x, y })
}

impl App {
    pub(crate) fn on_mouse(&mut self, m: MouseEvent) {
        let (x, y) = (m.column, m.row);
        if self.popup.is_some() {
            // Popups take the wheel; clicks outside them do nothing (an answer needs a key).
            if let MouseEventKind::ScrollUp | MouseEventKind::ScrollDown = m.kind
                && matches!(self.popup, Some(Popup::Review { .. } | Popup::ShellChanges { .. }))
            {
                let action = if m.kind == MouseEventKind::ScrollUp { Action::Up } else { Action::Down };
                for _ in 0..WHEEL_ROWS {
                    self.act(action);
                }
            }
            return;
        }
        let pane = self.pane_at(x, y);
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(&(_, p)) = self.areas.tabs.iter().find(|(r, _)| inside(*r, x, y)) {
                    self.focus_pane(p);
                    return;
                }
                let Some(pane) = pane else { return };
                self.focus_pane(pane);
                self.click(pane, y);
            }
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                // The pane under the pointer scrolls; the focus stays where it is.
                let Some(pane) = pane else { return };
                let action = if m.kind == MouseEventKind::ScrollUp { Action::Up } else { Action::Down };
                for _ in 0..WHEEL_ROWS {
                    self.dispatch(pane, action);
                }
            }
            _ => {}
        }
    }

    fn pane_at(&self, x: u16, y: u16) -> Option<Pane> {
        if inside(self.areas.steps, x, y) || inside(self.areas.source, x, y) {
            Some(Pane::Steps)
        } else if inside(self.areas.detail, x, y) {
            Some(if self.focus == Pane::Steps || self.zoom { self.detail } else { self.focus })
        } else {
            None
        }
    }
}
