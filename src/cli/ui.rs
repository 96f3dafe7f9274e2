//! The terminal UI's flags, shared by `trowel debug` and `trowel replay`.

use clap::Args;

/// How the terminal UI looks and listens.
#[derive(Debug, Clone, Args)]
pub struct UiArgs {
    /// Do not capture the mouse (the terminal's own text selection keeps working).
    #[arg(long)]
    pub no_mouse: bool,
    /// Colour theme: dark (default), light, mono, NAME from ~/.config/trowel/themes/NAME.toml,
    /// or a path to a .toml theme file. NO_COLOR forces mono.
    #[arg(long, value_name = "NAME")]
    pub theme: Option<String>,
}
