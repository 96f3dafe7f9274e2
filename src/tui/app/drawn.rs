//! What a frame showed, as the reducer learns it: drawing takes the app read-only and returns
//! a [`Drawn`] (where the panes went, where each pane's view ended up, which screen row shows
//! what), which the session sends back as [`Msg::Drawn`](super::Msg::Drawn). Page sizes, the
//! mouse and the next frame's scroll positions come from it.

use ratatui::layout::Rect;

use super::{App, Pane, Popup};
use crate::tui::panes::View;

/// Where the last frame put the parts of the screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Areas {
    pub steps: Rect,
    pub source: Rect,
    pub detail: Rect,
    pub popup: Rect,
    /// The pane tabs on the right side's border.
    pub tabs: Vec<(Rect, Pane)>,
}

/// What one frame showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drawn {
    /// The screen's layout (none when a pane was drawn on its own, as tests do).
    pub areas: Option<Areas>,
    /// Each pane drawn, in drawing order.
    pub views: Vec<View>,
    /// The first line of the popup's content shown (push review, shell changes).
    pub popup_scroll: Option<usize>,
}

impl App {
    pub(super) fn drawn(&mut self, d: Drawn) {
        if let Some(areas) = d.areas {
            self.areas = areas;
        }
        for view in d.views {
            self.panes.get_mut(view.pane()).drawn(view);
        }
        if let Some(s) = d.popup_scroll
            && let Some(
                Popup::Review { scroll, .. } | Popup::ShellChanges { scroll, .. } | Popup::Command { scroll, .. },
            ) = &mut self.popup
        {
            *scroll = s;
        }
    }
}
