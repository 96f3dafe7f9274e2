//! The terminal debugger: `trowel debug` steps through a build on the real engine, and
//! `trowel replay FILE` shows the same panes over a recorded trace, offline and read-only.
//!
//! Layers, each testable on its own:
//! - [`model`]: the build as the views see it, folded from engine events (live or recorded);
//!   derived views: the change tree, layer waste, file diffs.
//! - [`app`]: the UI state as a pure reducer of messages (events, keys, mouse, pauses, what a
//!   frame showed) that returns effects (answer the engine, open a shell, quit).
//! - [`panes`]: one component per pane, gitui style, owning its state (cursor, scroll, filter),
//!   its actions and its drawing; what crosses panes goes through the app.
//! - [`ui`]: the screen's layout, bars and popups; drawing reads the app and changes nothing,
//!   it returns what it showed where ([`app::Drawn`]).
//! - [`keymap`] and [`theme`]: every key binding in one table (also the help), colours from
//!   `themes/*.toml`.
//! - `session`, `terminal`, `input`, `live`, `replay`: the terminal, the threads (engine,
//!   input reader) and the event loop.
//! - [`compare`]: `trowel replay A --compare B`, two builds side by side (a view of its own).

pub mod app;
pub mod clipboard;
pub mod compare;
pub mod error;
pub mod format;
mod input;
pub mod keymap;
mod live;
pub mod model;
pub mod panes;
mod replay;
mod session;
mod terminal;
pub mod theme;
pub mod ui;

pub use app::{App, Effect, Mode, Msg, Pane};
pub use compare::run_compare;
pub use error::TuiError;
pub use live::{DebugConfig, run_debug};
pub use replay::run_replay;
pub use theme::Theme;
