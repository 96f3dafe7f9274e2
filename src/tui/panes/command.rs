//! The command popup (`e` on a step): how long the step ran and, apart, how long the build was
//! paused at it; which attempt ran and, for an edited one, what the Dockerfile says; then the
//! step's whole instruction as it ran, with build args and ENV substituted, wrapped instead of
//! cut, above the instruction as written. What it shows
//! is the `step_started` event's text, which the engine masked before any viewer saw it: the UI
//! has no secret to mask and masks nothing itself. `y` copies it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::{App, Popup};
use crate::tui::format;
use crate::tui::model::{StepState, StepView};
use crate::tui::theme::Theme;

/// The text `y` copies: the expanded instruction, or (before the step started) as written.
pub fn text(step: &StepView) -> &str {
    step.expanded.as_deref().unwrap_or(&step.source)
}

/// The popup's lines at a width (`now_ms`: the build's clock, for a step still running or
/// paused).
pub fn lines<'a>(step: &StepView, now_ms: u64, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let width = width.max(10);
    let mut out = Vec::new();
    let wrap_all = |s: &str| -> Vec<String> { s.lines().flat_map(|l| format::wrap(l, width)).collect() };
    if let Some(run) = step.run_ms(now_ms) {
        let mut t = format!("ran {}", format::duration_ms(run));
        let paused = step.paused_now(now_ms);
        if paused > 0 {
            t.push_str(&format!(" · paused {} in the debugger (not in the run time)", format::duration_ms(paused)));
        }
        out.extend(wrap_all(&t).into_iter().map(|l| Line::from(Span::styled(l, theme.dim))));
    }
    // The failure's exit code, which the status line's end says only on a wide terminal.
    if let (StepState::Failed, Some(code)) = (step.state, step.exit_code) {
        out.push(Line::from(Span::styled(format!("failed: exit code {code}"), theme.failed)));
    }
    if let Some(note) = step.attempt_note() {
        out.extend(wrap_all(&note).into_iter().map(|l| Line::from(Span::styled(l, theme.status_warn))));
    }
    if !out.is_empty() {
        out.push(Line::default());
    }
    match &step.expanded {
        Some(e) => {
            // A RUN's command is the shell's to expand when it runs (BuildKit substitutes only
            // its flags); every other instruction's variables are the builder's.
            let how = if step.keyword.eq_ignore_ascii_case("RUN") {
                "as run (the shell expands its $VARIABLES; secrets masked):"
            } else {
                "as run (ARG and ENV substituted, secrets masked by the engine):"
            };
            out.push(Line::from(Span::styled(how, theme.header)));
            out.extend(wrap_all(e).into_iter().map(|l| Line::from(Span::styled(l, theme.text))));
            if format::one_line(e) != format::one_line(&step.source) || e.lines().count() != step.source.lines().count()
            {
                out.push(Line::default());
                out.push(Line::from(Span::styled(format!("as written (line {}):", step.line), theme.header)));
                out.extend(wrap_all(&step.source).into_iter().map(|l| Line::from(Span::styled(l, theme.dim))));
            }
        }
        None => {
            out.push(Line::from(Span::styled(
                format!("as written (line {}); its variables are substituted when the step starts:", step.line),
                theme.header,
            )));
            out.extend(wrap_all(&step.source).into_iter().map(|l| Line::from(Span::styled(l, theme.text))));
        }
    }
    out
}

/// Draws the popup's content; returns the first line shown (the scroll, clamped).
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) -> Option<usize> {
    let Some(Popup::Command { id, scroll }) = app.popup else { return None };
    let step = app.model.step(id)?;
    let lines = lines(step, app.now_ms, theme, area.width as usize);
    let max = lines.len().saturating_sub(area.height as usize);
    let scroll = scroll.min(max);
    let visible: Vec<Line> = lines.into_iter().skip(scroll).take(area.height as usize).collect();
    frame.render_widget(Paragraph::new(visible), area);
    Some(scroll)
}
