//! The whole screen: a top bar (what is being debugged and where the build is), the Steps
//! pane over the Dockerfile on the left, the detail panes (tabs 2-6) on the right, a message
//! line and a key-hint bar at the bottom, and popups on top. In a narrow or short terminal
//! the left column shrinks first; `z` zooms the focused pane to the whole body.
//!
//! Drawing reads the app and changes nothing: what it showed where (the layout, each pane's
//! scroll position, the rows under the mouse) comes back as a [`Drawn`] for the session to
//! hand to the reducer.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::app::{App, Areas, Drawn, Mode, Pane, Popup, Severity};
use super::format;
use super::keymap;
use super::model::StepState;
use super::panes::{self, Ctx, View};
use super::theme::Theme;

/// Draws the whole screen; returns what it showed where.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) -> Drawn {
    let ctx = app.ctx();
    let area = frame.area();
    frame.render_widget(Block::new().style(theme.text), area);
    let [top, body, message, hints] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)])
            .areas(area);
    top_bar(frame, top, app, theme);
    let mut areas = Areas::default();
    let mut views = Vec::new();
    if app.zoom {
        let pane = app.focus;
        areas.steps = if pane == Pane::Steps { body } else { Rect::default() };
        areas.detail = if pane == Pane::Steps { Rect::default() } else { body };
        if pane == Pane::Steps {
            views.push(pane_in(frame, body, app, &ctx, theme, Pane::Steps));
        } else {
            views.push(detail(frame, body, app, &ctx, theme, &mut areas.tabs));
        }
    } else {
        let left_w = (body.width * 45 / 100).clamp(30.min(body.width), 64);
        let [left, right] = Layout::horizontal([Constraint::Length(left_w), Constraint::Min(10)]).areas(body);
        let source_h = if left.height >= 16 { left.height * 2 / 5 } else { 0 };
        let [steps, source] = Layout::vertical([Constraint::Min(3), Constraint::Length(source_h)]).areas(left);
        areas.steps = steps;
        areas.source = source;
        areas.detail = right;
        views.push(pane_in(frame, steps, app, &ctx, theme, Pane::Steps));
        if source.height > 0 {
            let block = pane_block(theme, false).title(Line::from(Span::styled(
                format!(" {} ", dockerfile_title(app, (source.width as usize).saturating_sub(4))),
                theme.title,
            )));
            let inner = block.inner(source);
            frame.render_widget(block, source);
            views.push(View::Source(panes::source::render(frame, inner, &ctx, theme)));
        }
        views.push(detail(frame, right, app, &ctx, theme, &mut areas.tabs));
    }
    message_line(frame, message, app, theme);
    hint_bar(frame, hints, app, theme);
    let (popup_area, popup_scroll) = popup(frame, area, app, theme);
    areas.popup = popup_area;
    Drawn { areas: Some(areas), views, popup_scroll }
}

/// The Dockerfile pane's title in `room` columns: the Dockerfile's path, or for a context
/// fetched from elsewhere (a directory that is gone once the build ends) where it came from and
/// the commit — as much of it as fits: the whole origin, else the repository's or archive's
/// name with the commit.
fn dockerfile_title(app: &App, room: usize) -> String {
    use unicode_width::UnicodeWidthStr;
    let Some(o) = &app.model.context_origin else {
        return format!("Dockerfile {}", format::truncate_start(&app.model.dockerfile_path, room.saturating_sub(12)));
    };
    let commit = o.commit.as_deref().map(|c| format!(" @{}", &c[..c.len().min(12)])).unwrap_or_default();
    let sub = o.sub_path.as_deref().map(|p| format!(" /{}", p.trim_matches('/'))).unwrap_or_default();
    let name = o.source.split('#').next().unwrap_or("").rsplit('/').next().unwrap_or("");
    let candidates = [
        format!("Dockerfile · {} {}{commit}{sub}", o.kind, o.source),
        format!("Dockerfile · {name}{commit}{sub}"),
        format!("{name}{commit}{sub}"),
    ];
    match candidates.iter().find(|c| c.width() <= room) {
        Some(c) => c.clone(),
        None => format::truncate_start(&candidates[2], room),
    }
}

fn pane_block(theme: &Theme, focused: bool) -> Block<'static> {
    Block::new().borders(Borders::ALL).border_style(if focused { theme.border_focus } else { theme.border })
}

/// Draws one pane with its border and title, on its own (for tests).
pub fn render_pane(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, pane: Pane) -> Drawn {
    let view = pane_in(frame, area, app, &app.ctx(), theme, pane);
    Drawn { views: vec![view], ..Drawn::default() }
}

/// Draws one pane with its border and title.
fn pane_in(frame: &mut Frame, area: Rect, app: &App, ctx: &Ctx, theme: &Theme, pane: Pane) -> View {
    let focused = app.focus == pane;
    let title_style = if focused { theme.title_focus } else { theme.title };
    let mut title = format!(" {} {} ", pane.number(), pane.title());
    if pane == Pane::Steps {
        // Under a platform filter, the steps of the stages built for that platform (the ones
        // the pane lists), not every platform's.
        let listed = |s: &&trowel_events::state::StepView| {
            ctx.platform.as_deref().is_none_or(|p| app.model.stage(s.id.stage).is_none_or(|st| st.serves(p)))
        };
        let done =
            app.model.steps().filter(listed).filter(|s| s.state.is_done() && s.state != StepState::Skipped).count();
        let total = app.model.steps().filter(listed).filter(|s| s.state != StepState::Skipped).count();
        title = format!(" 1 Steps {done}/{total} ");
        if app.model.platforms.len() > 1 {
            title.push_str(&format!("· {} ", ctx.platform.as_deref().unwrap_or("all platforms")));
        }
        match app.model.checks.len() {
            0 => {}
            1 => title.push_str("· 1 check "),
            n => title.push_str(&format!("· {n} checks ")),
        }
    }
    let block = pane_block(theme, focused).title(Line::from(Span::styled(title, title_style)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    app.panes().get(pane).render(frame, inner, ctx, theme)
}

/// The right side: tabs for panes 2-6 in the border (where each went goes to `tabs`), the
/// shown pane inside.
fn detail(frame: &mut Frame, area: Rect, app: &App, ctx: &Ctx, theme: &Theme, tabs: &mut Vec<(Rect, Pane)>) -> View {
    let shown = app.detail;
    let focused = app.focus == shown;
    let block = pane_block(theme, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // Tabs on the top border; short names when the border is narrow, and when even those do
    // not all fit, numbers with as many names as fit (the shown pane's first), so every pane
    // is seen.
    let avail = area.width.saturating_sub(2) as usize;
    let long: usize = Pane::ALL[1..].iter().map(|p| p.title().len() + 4).sum();
    let mut named = [false; Pane::ALL.len()];
    let mut used: usize = Pane::ALL[1..].iter().map(|p| p.number().to_string().len() + 1).sum();
    let order = std::iter::once(shown).chain(Pane::ALL[1..].iter().copied().filter(|p| *p != shown));
    for p in order {
        if used + p.title().len() < avail {
            used += p.title().len() + 1;
            named[p.number() - 1] = true;
        }
    }
    let mut x = area.x + 1;
    for p in &Pane::ALL[1..] {
        let label = if long <= avail {
            format!(" {} {} ", p.number(), p.title())
        } else if named[p.number() - 1] {
            format!("{} {}", p.number(), p.title())
        } else {
            p.number().to_string()
        };
        let w = label.chars().count() as u16;
        if x + w > area.x + area.width.saturating_sub(1) {
            break;
        }
        let style = match (*p == shown, focused) {
            (true, true) => theme.title_focus.patch(Style::new().add_modifier(ratatui::style::Modifier::REVERSED)),
            (true, false) => theme.title.patch(Style::new().add_modifier(ratatui::style::Modifier::REVERSED)),
            _ => theme.title,
        };
        let r = Rect::new(x, area.y, w, 1);
        frame.render_widget(Paragraph::new(Span::styled(label, style)), r);
        tabs.push((r, *p));
        x += w + if long <= avail { 0 } else { 1 };
    }
    app.panes().get(shown).render(frame, inner, ctx, theme)
}

/// What the build is doing: the state itself (running, paused at line N, failed, done),
/// which the top bar never cuts, and what it can cut when the terminal is narrow.
pub(crate) struct State {
    pub essential: String,
    pub detail: String,
    pub style: Style,
}

fn state(essential: String, detail: impl Into<String>, style: Style) -> State {
    State { essential, detail: detail.into(), style }
}

/// What the build is doing, in one line.
pub(crate) fn state_text(app: &App, theme: &Theme) -> State {
    let m = &app.model;
    if let Some(p) = &app.pause {
        let when = match p.at.when {
            trowel_events::When::BeforeStep => "before",
            trowel_events::When::AfterStep => "after",
        };
        return state(
            format!("‖ paused {when} L{} {}{}", p.at.line, p.at.keyword, platform_of(m, p.at.id.stage)),
            format!("— {}", p.reasons.join(", ")),
            theme.status_warn,
        );
    }
    if let Some(Popup::ShellChanges { changes, .. }) = &app.popup
        && app.waiting == Some(super::app::Waiting::ShellChoice)
    {
        return state(
            format!("the shell changed {} path(s):", changes.len()),
            "y keeps them as a layer, d discards them",
            theme.status_warn,
        );
    }
    if app.waiting == Some(super::app::Waiting::Push) {
        return state("the image is ready:".into(), "review it (p), then y pushes or n aborts", theme.status_warn);
    }
    if app.shell_open {
        return state("shell session open".into(), "", theme.status_warn);
    }
    if let Some(f) = &m.failure {
        let at = f.line.map(|l| format!(" at L{l}")).unwrap_or_default();
        return state(format!("✗ failed{at}:"), f.error.lines().next().unwrap_or(""), theme.status_err);
    }
    if let Some(done) = &m.finished {
        let index = if m.index.is_some() { "index " } else { "" };
        let digest = done.digest.as_ref().map(|d| format!("{index}{}", format::digest_short(d)));
        let pushed = (!done.pushed.is_empty()).then(|| format!("→ {}", done.pushed.join(", ")));
        let detail: Vec<String> = digest.into_iter().chain(pushed).collect();
        // The build's run time and its paused time, apart: the wall clock would count the
        // debugger's pauses as the build's.
        let paused = m.paused_ms();
        let essential = if paused > 0 {
            format!(
                "✓ built in {} run, {} paused",
                format::duration_ms(done.duration_ms.saturating_sub(paused)),
                format::duration_ms(paused)
            )
        } else {
            format!("✓ built in {}", format::duration_ms(done.duration_ms))
        };
        return state(essential, detail.join(" "), theme.status_ok);
    }
    if let Some(id) = m.current
        && let Some(s) = m.step(id)
    {
        if app.mode == Mode::Replay {
            return state(
                format!("⚠ the trace ends while L{} {} was running", s.line, s.keyword),
                "(the build was killed or is still running)",
                theme.status_warn,
            );
        }
        let text = format::one_line(s.expanded.as_deref().unwrap_or(&s.source));
        let text = text.strip_prefix(s.keyword.as_str()).map_or(text.as_str(), str::trim_start).to_string();
        return state(
            format!("▶ running L{} {}{}", s.line, s.keyword, platform_of(m, s.id.stage)),
            text,
            theme.running,
        );
    }
    if app.mode == Mode::Replay {
        return state("⚠ the trace ends before the build did".into(), "", theme.status_warn);
    }
    if m.events == 0 { state("starting…".into(), "", theme.dim) } else { state("running".into(), "", theme.running) }
}

/// ` · linux/arm64`: in a build for several platforms, which target a stage instance is built
/// for (` · linux/amd64 for linux/arm64` when it runs on another platform, `FROM
/// --platform=$BUILDPLATFORM`, as the Steps pane's header says; ` · shared` for one they
/// share); nothing in a build for one.
fn platform_of(m: &crate::tui::model::Model, stage: usize) -> String {
    let Some(s) = m.stage(stage) else { return String::new() };
    match (s.targets.as_slice(), s.platform.as_deref()) {
        ([one], Some(on)) if on != one => format!(" · {on} for {one}"),
        ([one], _) => format!(" · {one}"),
        ([_, _, ..], _) => " · shared".to_string(),
        _ => String::new(),
    }
}

/// The top bar: what is debugged, and the build's state. When the width runs short the
/// isolation goes first, then the title shrinks and goes, then the state's detail is cut:
/// the state itself (paused at line N, failed, done) is always shown.
fn top_bar(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    use unicode_width::UnicodeWidthStr;
    let what = match app.mode {
        Mode::Live => "trowel debug",
        Mode::Replay => "trowel replay",
    };
    let st = state_text(app, theme);
    let width = area.width as usize;
    let full_state =
        if st.detail.is_empty() { st.essential.clone() } else { format!("{} {}", st.essential, st.detail) };
    let need = st.essential.width() + 1;
    // Which isolation RUN got matters most in a pod, where `container` means the build
    // writes over the container's own `/`; it yields to the build's state on narrow screens.
    let iso = if width >= 100 && !app.model.isolation.is_empty() {
        format!("isolation {} · ", app.model.isolation)
    } else {
        String::new()
    };
    let fixed = format!(" {what} · ").width() + iso.width();
    // The title gets what the state itself leaves (at most a third of the bar, at least 10
    // columns), or nothing when even 10 columns would cut the state; the state's detail gets
    // the rest.
    let title_room = (width / 3).max(10).min(width.saturating_sub(fixed + need + 3));
    let head = if title_room >= 10 {
        let title = format::truncate_start(&app.title, title_room);
        format!(" {what} · {title} · {iso}")
    } else if width > what.width() + 4 + st.essential.width() {
        format!(" {what} · ")
    } else {
        " ".to_string()
    };
    let rest = width.saturating_sub(head.width());
    let shown = if full_state.width() <= rest { full_state } else { format::truncate(&full_state, rest) };
    let line = Line::from(vec![
        Span::styled(head, theme.bar),
        Span::styled(format::fit(&shown, rest), theme.bar.patch(st.style)),
    ]);
    frame.render_widget(Paragraph::new(line).style(theme.bar), area);
}

fn message_line(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let width = area.width as usize;
    let line = if let Some((text, sev)) = &app.message {
        let style = match sev {
            Severity::Info => theme.text,
            Severity::Warn => theme.status_warn,
            Severity::Error => theme.status_err,
        };
        Line::from(Span::styled(format::truncate(&format!(" {text}"), width), style))
    } else {
        let mut parts = Vec::new();
        // Lines limited to one platform are among the others, with their platform.
        let lines: Vec<usize> =
            app.ctx().line_breakpoints().into_iter().filter(|(_, p)| p.is_none()).map(|(l, _)| l).collect();
        if !lines.is_empty() {
            let mut ls = lines.clone();
            ls.sort_unstable();
            parts.push(format!("line {}", ls.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",")));
        }
        parts.extend(app.other_breakpoints());
        let text = if app.mode == Mode::Live {
            if parts.is_empty() { " no breakpoints".to_string() } else { format!(" breaks: {}", parts.join(" · ")) }
        } else if let Some(f) = &app.model.failure {
            let text = format!(" ✗ {}", f.error.lines().next().unwrap_or(""));
            return frame
                .render_widget(Paragraph::new(Span::styled(format::truncate(&text, width), theme.status_err)), area);
        } else {
            " read-only replay: no shell, no push".to_string()
        };
        Line::from(Span::styled(format::truncate(&text, width), theme.dim))
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hint_bar(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let width = area.width as usize;
    // Only what means something now: the keymap says in which state each hint does, the app
    // what each action needs beyond that.
    let mut shown: Vec<(usize, &keymap::Binding)> = Vec::new();
    for (i, b) in keymap::bindings(&app.contexts()).into_iter().enumerate() {
        if b.hint.is_none() || !app.hint_applies(b) {
            continue;
        }
        shown.push((i, b));
    }
    // What does not fit goes by rank (the state's keys stay), the rest keep the table's order.
    let w = |b: &keymap::Binding| b.keys[0].label().chars().count() + b.hint.unwrap_or("").chars().count() + 3;
    let mut by_rank = shown.clone();
    by_rank.sort_by_key(|(i, b)| (app.hint_rank(b), *i));
    let mut used = 0usize;
    let mut keep = Vec::new();
    for (i, b) in by_rank {
        if used + w(b) <= width {
            used += w(b);
            keep.push(i);
        }
    }
    let mut spans = Vec::new();
    for (i, b) in shown {
        if !keep.contains(&i) {
            continue;
        }
        spans.push(Span::styled(format!(" {}", b.keys[0].label()), theme.bar.patch(theme.key)));
        spans.push(Span::styled(format!(" {} ", b.hint.unwrap_or("")), theme.bar));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.bar), area);
}

/// A centered rectangle of the given percentage size, at least `min` cells.
fn centered(area: Rect, pct_w: u16, pct_h: u16, min_w: u16, min_h: u16) -> Rect {
    let w = (area.width * pct_w / 100).max(min_w).min(area.width);
    let h = (area.height * pct_h / 100).max(min_h).min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

/// Shrinks a centered popup to the rows its content needs (it stays centered).
fn fit_height(area: Rect, r: Rect, needed: usize) -> Rect {
    let h = (needed as u16).clamp(5.min(r.height), r.height);
    Rect::new(r.x, area.y + (area.height.saturating_sub(h)) / 2, r.width, h)
}

/// Draws the popup, if one is open; returns where, and the first line of its content shown.
fn popup(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) -> (Rect, Option<usize>) {
    let Some(p) = &app.popup else { return (Rect::default(), None) };
    let (rect, title) = match p {
        Popup::Help { .. } => {
            let ctx = app.focus.title();
            (centered(area, 80, 85, 60, 12), format!(" Help: {ctx} pane, debugging, everywhere "))
        }
        Popup::ConfirmQuit => (centered(area, 50, 20, 44, 5), " Quit? ".to_string()),
        Popup::EditStep(ed) => {
            let r = centered(area, 90, 20, 50, 7);
            (fit_height(area, r, 7), format!(" Edit line {} and run it ", ed.line))
        }
        Popup::ShellChanges { changes, .. } => {
            let r = centered(area, 80, 70, 60, 10);
            (fit_height(area, r, changes.len() + 5), " Shell session changes ".to_string())
        }
        Popup::Command { id, .. } => {
            let r = centered(area, 85, 70, 60, 10);
            let step = app.model.step(*id);
            let needed = step
                .map_or(0, |s| panes::command::lines(s, app.now_ms, theme, r.width.saturating_sub(2) as usize).len());
            let t = step.map(|s| format!(" Line {} {}: y copies, esc closes ", s.line, s.keyword)).unwrap_or_default();
            (fit_height(area, r, needed + 2), t)
        }
        Popup::Review { decided, .. } => {
            let t = if *decided { " Push " } else { " Push review: nothing is pushed until you answer " };
            let r = centered(area, 92, 85, 70, 14);
            let needed = panes::review::lines(app, theme, r.width.saturating_sub(2) as usize, *decided).len() + 2;
            (fit_height(area, r, needed), t.to_string())
        }
    };
    frame.render_widget(Clear, rect);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.popup_border)
        .title(Line::from(Span::styled(title, theme.title_focus)))
        .style(theme.text);
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let scroll = match p {
        Popup::Help { .. } => {
            panes::help::render(frame, inner, app, theme);
            None
        }
        Popup::ShellChanges { .. } => panes::shell::render(frame, inner, app, theme),
        Popup::Review { .. } => panes::review::render(frame, inner, app, theme),
        Popup::Command { .. } => panes::command::render(frame, inner, app, theme),
        Popup::EditStep(ed) => {
            panes::editor::render(frame, inner, ed, theme);
            None
        }
        Popup::ConfirmQuit => {
            let lines = vec![
                Line::from(Span::styled("The build is running. Abort it and quit?", theme.text)),
                Line::default(),
                Line::from(vec![
                    Span::styled("y", theme.key),
                    Span::styled(" quit and abort   ", theme.text),
                    Span::styled("n", theme.key),
                    Span::styled(" keep debugging", theme.text),
                ]),
            ];
            frame.render_widget(Paragraph::new(lines), inner);
            None
        }
    };
    (rect, scroll)
}
