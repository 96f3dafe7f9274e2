//! Colour themes, loaded from TOML (`themes/*.toml` in the repository, built into the binary).
//!
//! A theme maps each role the panes draw (`added`, `failed`, `selection`, …) to a style
//! written as words: colours (`red`, `lightcyan`, `#89b4fa`, `236`), `on COLOUR` for the
//! background, and modifiers (`bold`, `dim`, `italic`, `underline`, `reversed`). A theme file
//! may name another with `extends = "dark"` and override only some roles (gitui-style partial
//! themes). `--theme NAME` picks a built-in theme (`dark`, the default; `light`; `mono`), a
//! theme file in `$XDG_CONFIG_HOME/trowel/themes/NAME.toml`, or a path to a `.toml` file.
//! With `NO_COLOR` set, the `mono` theme is used whatever was asked for: every role is then
//! told apart by text and modifiers alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use super::error::TuiError;

/// The built-in themes: name and TOML text.
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

macro_rules! roles {
    ($($role:ident: $doc:literal),* $(,)?) => {
        /// The styles of every role the panes draw.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            pub name: String,
            $(#[doc = $doc] pub $role: Style,)*
        }

        /// Every role's name, as written in theme files.
        pub const ROLES: &[&str] = &[$(stringify!($role)),*];

        impl Theme {
            fn blank(name: &str) -> Theme {
                Theme { name: name.to_string(), $($role: Style::new(),)* }
            }
            fn set(&mut self, role: &str, style: Style) -> bool {
                match role {
                    $(stringify!($role) => { self.$role = style; true })*
                    _ => false,
                }
            }
        }
    };
}

roles! {
    text: "Ordinary text.",
    dim: "Secondary text: sizes, hints, line numbers.",
    border: "Borders of unfocused panes.",
    border_focus: "The focused pane's border.",
    title: "Pane titles.",
    title_focus: "The focused pane's title.",
    selection: "The selected row.",
    header: "Table headers and section labels.",
    bar: "The top and bottom bars.",
    key: "Keys in the hint bar and help.",
    status_ok: "Good news: finished, pushed, cache hit.",
    status_warn: "Warnings and pauses.",
    status_err: "Errors and failures.",
    pending: "Steps not started.",
    running: "The running step.",
    cached: "Steps served from the cache.",
    built: "Steps that ran.",
    metadata: "Steps that changed only the config.",
    failed: "Failed steps.",
    skipped: "Steps of stages the target does not need.",
    cache_hit: "The cache-hit badge.",
    cache_miss: "The cache-miss badge.",
    breakpoint: "Breakpoint markers.",
    current_line: "The Dockerfile line being executed or paused at.",
    line_number: "Line numbers.",
    added: "Added paths.",
    modified: "Modified paths.",
    deleted: "Deleted paths.",
    diff_add: "Added lines in a diff.",
    diff_del: "Removed lines in a diff.",
    diff_add_emph: "Changed words in an added line.",
    diff_del_emph: "Changed words in a removed line.",
    diff_context: "Unchanged lines in a diff.",
    stderr: "Output on stderr.",
    step_header: "Step headers in the log.",
    search_match: "Search matches.",
    popup_border: "Borders of popups.",
    waste: "Wasted bytes.",
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    styles: BTreeMap<String, String>,
}

impl Theme {
    /// The default theme.
    pub fn dark() -> Theme {
        Theme::builtin("dark").expect("the dark theme is built in and valid")
    }

    /// The theme for terminals without colour (and `NO_COLOR`).
    pub fn mono() -> Theme {
        Theme::builtin("mono").expect("the mono theme is built in and valid")
    }

    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Result<Theme, TuiError> {
        Theme::builtin_at(name, 0)
    }

    fn builtin_at(name: &str, depth: usize) -> Result<Theme, TuiError> {
        let (_, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| TuiError::Theme { name: name.to_string(), message: "no such built-in theme".into() })?;
        Theme::parse(name, text, depth)
    }

    /// The theme to use for `--theme` (or the default), honouring `NO_COLOR`.
    pub fn select(requested: Option<&str>) -> Result<Theme, TuiError> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Ok(Theme::mono());
        }
        match requested {
            None => Ok(Theme::dark()),
            Some(name) => Theme::load(name),
        }
    }

    /// A theme by name or path (see the module documentation for the search order).
    pub fn load(name: &str) -> Result<Theme, TuiError> {
        Theme::load_at(name, 0)
    }

    fn load_at(name: &str, depth: usize) -> Result<Theme, TuiError> {
        let looks_like_path = name.contains('/') || name.ends_with(".toml");
        if looks_like_path {
            return Theme::file_at(Path::new(name), depth);
        }
        if BUILTIN.iter().any(|(n, _)| *n == name) {
            return Theme::builtin_at(name, depth);
        }
        if let Some(p) = user_theme(name).filter(|p| p.is_file()) {
            return Theme::file_at(&p, depth);
        }
        let known: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(TuiError::Theme {
            name: name.to_string(),
            message: format!("not a built-in theme ({}) nor a file in {}", known.join(", "), user_dir_display()),
        })
    }

    /// A theme file.
    pub fn from_file(path: &Path) -> Result<Theme, TuiError> {
        Theme::file_at(path, 0)
    }

    fn file_at(path: &Path, depth: usize) -> Result<Theme, TuiError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TuiError::Theme { name: path.display().to_string(), message: e.to_string() })?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Theme::parse(&name, &text, depth).map_err(|e| match e {
            TuiError::Theme { message, .. } => TuiError::Theme { name: path.display().to_string(), message },
            other => other,
        })
    }

    /// Parses a theme's TOML text. `depth` bounds `extends` chains.
    pub fn parse(name: &str, text: &str, depth: usize) -> Result<Theme, TuiError> {
        let err = |message: String| TuiError::Theme { name: name.to_string(), message };
        let file: ThemeFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut theme = match &file.extends {
            Some(_) if depth >= 4 => return Err(err("`extends` nests too deeply".into())),
            Some(parent) => Theme::load_at(parent, depth + 1).map_err(|e| err(format!("extends {parent:?}: {e}")))?,
            None => Theme::blank(name),
        };
        theme.name = name.to_string();
        for (role, spec) in &file.styles {
            let style = parse_style(spec).map_err(|m| err(format!("style {role} = {spec:?}: {m}")))?;
            if !theme.set(role, style) {
                return Err(err(format!("unknown role {role:?} (known: {})", ROLES.join(", "))));
            }
        }
        Ok(theme)
    }
}

fn user_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("trowel").join("themes"))
}

fn user_theme(name: &str) -> Option<PathBuf> {
    user_dir().map(|d| d.join(format!("{name}.toml")))
}

fn user_dir_display() -> String {
    user_dir().map_or_else(|| "$XDG_CONFIG_HOME/trowel/themes".into(), |d| d.display().to_string())
}

/// `"lightgreen on #202020 bold"` → a style.
pub fn parse_style(spec: &str) -> Result<Style, String> {
    let mut style = Style::new();
    let mut words = spec.split_whitespace();
    while let Some(w) = words.next() {
        let lw = w.to_ascii_lowercase();
        match lw.as_str() {
            "on" => {
                let c = words.next().ok_or("`on` needs a colour after it")?;
                style = style.bg(parse_color(c)?);
            }
            "bold" => style = style.add_modifier(Modifier::BOLD),
            "dim" => style = style.add_modifier(Modifier::DIM),
            "italic" => style = style.add_modifier(Modifier::ITALIC),
            "underline" | "underlined" => style = style.add_modifier(Modifier::UNDERLINED),
            "reversed" | "reverse" => style = style.add_modifier(Modifier::REVERSED),
            "crossed" | "strikethrough" => style = style.add_modifier(Modifier::CROSSED_OUT),
            "plain" => {}
            _ => style = style.fg(parse_color(w)?),
        }
    }
    Ok(style)
}

fn parse_color(s: &str) -> Result<Color, String> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() == 6
            && let Ok(v) = u32::from_str_radix(hex, 16)
        {
            return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
        return Err(format!("invalid colour {s:?}: expected #rrggbb"));
    }
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Color::Indexed(n));
    }
    let c = match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return Err(format!("unknown colour {s:?}")),
    };
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_parse_and_set_every_role() {
        for (name, _) in BUILTIN {
            let t = Theme::builtin(name).unwrap();
            assert_eq!(t.name, *name);
        }
        let dark = Theme::dark();
        assert_ne!(dark.added, Style::new(), "the dark theme colours added paths");
        // The mono theme uses no colour at all.
        let mono = Theme::mono();
        let text = BUILTIN.iter().find(|(n, _)| *n == "mono").unwrap().1;
        let file: ThemeFile = toml::from_str(text).unwrap();
        for (role, spec) in &file.styles {
            let s = parse_style(spec).unwrap();
            assert!(s.fg.is_none() && s.bg.is_none(), "mono role {role} has a colour");
        }
        assert!(mono.selection.add_modifier.contains(Modifier::REVERSED));
    }

    #[test]
    fn styles_and_partial_themes() {
        let s = parse_style("lightgreen on #102030 bold underline").unwrap();
        assert_eq!(s.fg, Some(Color::LightGreen));
        assert_eq!(s.bg, Some(Color::Rgb(0x10, 0x20, 0x30)));
        assert!(s.add_modifier.contains(Modifier::BOLD | Modifier::UNDERLINED));
        assert_eq!(parse_style("236").unwrap().fg, Some(Color::Indexed(236)));
        assert!(parse_style("on").is_err() && parse_style("purplish").is_err());
        let t = Theme::parse("mine", "extends = \"dark\"\n[styles]\nadded = \"blue\"\n", 0).unwrap();
        assert_eq!(t.added.fg, Some(Color::Blue));
        assert_eq!(t.deleted, Theme::dark().deleted);
        let e = Theme::parse("bad", "[styles]\nnope = \"red\"\n", 0).unwrap_err().to_string();
        assert!(e.contains("unknown role \"nope\"") && e.contains("bad"), "{e}");
    }
}
