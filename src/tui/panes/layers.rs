//! The Layers pane: each layer of the image (digest, diff_id, compressed and uncompressed size,
//! media type, the step or debugger shell session that made it, marked `↻`/`✎` when the step
//! was re-run or edited at a failure pause), the selected layer's details,
//! and the waste: bytes a layer carries that a later line (or kept shell session) deleted or
//! overwrote, with both line numbers, each wasted byte counted once. In a build for several
//! platforms it lists every platform's image and the index first, then the layers of the
//! platform the Steps pane shows (`t` there), or of the last platform's image.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, Motion, Outcome, Severity, View as PaneView, field, scroll_for};
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::model::Model;
use crate::tui::model::waste::{self, WasteReport};
use crate::tui::theme::Theme;
use trowel_events::state::Maker;
use trowel_events::{BaseSource, Digest, LayerSummary, StepId, When};

/// Waste items listed (the largest first).
const WASTE_ROWS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct LayersPane {
    /// The selected layer.
    cursor: usize,
    /// Screen row → layer index, as last drawn.
    hits: Vec<(u16, usize)>,
    /// The waste analysis, kept while the events it was made from are the model's: it walks
    /// every step's changes and, when listed, the base's files, and the pane is drawn on
    /// every key and tick.
    waste: std::cell::RefCell<Option<(WasteKey, std::rc::Rc<WasteReport>)>>,
}

/// What a waste analysis was made from: the events folded so far and the platform shown.
type WasteKey = (usize, Option<String>);

impl LayersPane {
    fn waste(&self, ctx: &Ctx) -> std::rc::Rc<WasteReport> {
        let key = (ctx.model.events, ctx.platform.clone());
        let mut kept = self.waste.borrow_mut();
        match &*kept {
            Some((k, report)) if *k == key => report.clone(),
            _ => {
                let report = std::rc::Rc::new(waste::analyze_for(ctx.model, ctx.platform.as_deref()));
                *kept = Some((key, report.clone()));
                report
            }
        }
    }
}

/// What a frame of the pane showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub cursor: usize,
    pub hits: Vec<(u16, usize)>,
}

/// The layers the pane lists: the image's once assembled, else those of the image's stages so
/// far (base layers, then each step's).
pub fn layers(model: &Model) -> Vec<LayerSummary> {
    layers_for(model, None)
}

/// [`layers`] of the image for the target `platform` (a build for several, as the Steps pane's
/// filter shows it; `None`: the last platform's image).
pub fn layers_for(model: &Model, platform: Option<&str>) -> Vec<LayerSummary> {
    let image = match platform {
        Some(p) => model.images.iter().find(|i| i.platform.as_deref() == Some(p)),
        None => model.image.as_ref(),
    };
    if let Some(img) = image {
        return img.layers.clone();
    }
    let mut out = Vec::new();
    for s in waste::image_stages_for(model, platform) {
        let Some(stage) = model.stage(s) else { continue };
        if stage.source.as_ref().is_some_and(|src| !matches!(src, BaseSource::Stage { .. })) {
            out.extend(stage.base_layers.iter().cloned());
        }
        for id in &stage.steps {
            let Some(step) = model.step(*id) else { continue };
            let kept = |before: bool| {
                step.shells
                    .iter()
                    .filter(move |s| s.kept == Some(true) && s.before_step == before)
                    .filter_map(|s| s.layer.clone())
            };
            out.extend(kept(true));
            out.extend(step.layer.clone());
            out.extend(kept(false));
        }
    }
    out
}

impl LayersPane {
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Screen row → layer index, as last drawn.
    pub fn hits(&self) -> &[(u16, usize)] {
        &self.hits
    }
}

fn short_media(m: &str) -> String {
    m.rsplit(['.', '/']).next().unwrap_or(m).to_string()
}

/// `L6 RUN`, `L6 shell`, `L6 RUN ✎` (a step re-run or edited at a failure pause is marked as
/// in the Steps pane). The push review names layers with it too: one label wherever a layer is.
pub(crate) fn made_by(model: &Model, step: Option<StepId>, shell: Option<When>, digest: &Digest) -> String {
    let maker = model.maker(step, shell, digest);
    match maker {
        Maker::Step(s) => match super::steps::attempt_mark(s) {
            Some(mark) => format!("{} {mark}", maker.label()),
            None => maker.label(),
        },
        _ => maker.label(),
    }
}

/// Bytes of the layer the final image hides.
fn wasted(model: &Model, l: &LayerSummary, report: &WasteReport) -> u64 {
    let maker = model.maker(l.step, l.shell, &l.digest);
    let shell = match maker {
        Maker::Shell { when, .. } => Some(when),
        _ => None,
    };
    match maker {
        // A base file a step overwrote or deleted is the base layer's waste (`base → L2` in
        // the list below), when the base's layers were listed.
        Maker::Base => report.added_by_base(&l.digest).unwrap_or(0),
        _ => maker.step().map_or(0, |s| report.added_by(s.id, shell)),
    }
}

impl Component for LayersPane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        if let Some(m) = Motion::of(action, ctx.page) {
            self.cursor = m.clamped(self.cursor, layers_for(ctx.model, ctx.platform.as_deref()).len());
            return Outcome::Done;
        }
        match action {
            Action::Open => {
                let Some(l) = layers_for(ctx.model, ctx.platform.as_deref()).get(self.cursor).cloned() else {
                    return Outcome::Done;
                };
                match ctx.model.maker(l.step, l.shell, &l.digest) {
                    Maker::Step(s) => Outcome::ShowStep(s.id),
                    // The step's changes are not the session's: say who made it rather than
                    // show the step as if it had.
                    m @ Maker::Shell { .. } => Outcome::Say(
                        format!("made by a {} (replay --summary lists the session)", m.describe()),
                        Severity::Info,
                    ),
                    Maker::Base => {
                        Outcome::Say("a base-image layer: no step of this Dockerfile made it".into(), Severity::Info)
                    }
                }
            }
            _ => Outcome::Ignored,
        }
    }

    fn click(&mut self, row: u16, _ctx: &Ctx) -> Outcome {
        if let Some(&(_, i)) = self.hits.iter().find(|(r, _)| *r == row) {
            self.cursor = i;
        }
        Outcome::Done
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> PaneView {
        let layers = layers_for(ctx.model, ctx.platform.as_deref());
        let report = self.waste(ctx);
        let width = area.width as usize;
        let height = area.height as usize;
        if layers.is_empty() {
            let p = Paragraph::new(Span::styled("no layers yet", theme.dim));
            frame.render_widget(p, area);
            return PaneView::Layers(View { cursor: self.cursor, hits: self.hits.clone() });
        }
        let cursor = self.cursor.min(layers.len() - 1);
        let detail = details(ctx, &layers[cursor], &report, theme, width);
        let waste = waste_lines(&layers, &report, theme, width);
        let images = image_lines(ctx, theme, width);
        // The table gets what the images, details and waste leave, at least a few rows.
        let table_h = height
            .saturating_sub(images.len() + detail.len() + waste.len() + 1)
            .max(3.min(height))
            .min(layers.len() + 1);
        let rows_h = table_h.saturating_sub(1);
        let scroll = scroll_for(cursor, 0, rows_h, layers.len());
        // Columns: # digest size [unpacked] step waste; "unpacked" only when there is room.
        let unpacked = width >= 60;
        // Wide enough for the longest label (a stage's single snapshot: `L5–12 stage`) where
        // there is room.
        let longest =
            layers.iter().map(|l| made_by(ctx.model, l.step, l.shell, &l.digest).chars().count()).max().unwrap_or(0);
        let step_w = if unpacked { longest.clamp(9, 14) } else { 9 };
        let mut header = format!("{:>2} {} {}", "#", format::fit("digest", 12), format::fit_right("size", 7));
        if unpacked {
            header.push_str(&format!(" {}", format::fit_right("unpacked", 8)));
        }
        header.push_str(&format!(" {} {}", format::fit("step", step_w), format::fit_right("waste", 7)));
        let mut out = images;
        out.push(Line::from(Span::styled(format::truncate(&header, width), theme.header)));
        let mut hits = Vec::new();
        for (i, l) in layers.iter().enumerate().skip(scroll).take(rows_h) {
            let wasted = wasted(ctx.model, l, &report);
            let mut spans = vec![
                Span::styled(format!("{:>2} ", i + 1), theme.line_number),
                Span::styled(format!("{} ", format::digest_short(&l.digest)), theme.text),
                Span::styled(format::fit_right(&format::bytes_compact(l.size), 7), theme.text),
            ];
            if unpacked {
                let u = l.uncompressed_size.map(format::bytes_compact).unwrap_or_default();
                spans.push(Span::styled(format!(" {}", format::fit_right(&u, 8)), theme.dim));
            }
            spans.push(Span::styled(
                format!(" {}", format::fit(&made_by(ctx.model, l.step, l.shell, &l.digest), step_w)),
                theme.dim,
            ));
            let w = if wasted > 0 { format::bytes_compact(wasted) } else { String::new() };
            spans.push(Span::styled(format!(" {}", format::fit_right(&w, 7)), theme.waste));
            let mut line = Line::from(spans);
            if i == cursor {
                line = line.patch_style(theme.selection);
            }
            hits.push((area.y + out.len() as u16, i));
            out.push(line);
        }
        out.push(Line::default());
        out.extend(detail);
        out.extend(waste);
        frame.render_widget(Paragraph::new(out), area);
        PaneView::Layers(View { cursor, hits })
    }

    fn drawn(&mut self, view: PaneView) {
        if let PaneView::Layers(v) = view {
            self.cursor = v.cursor;
            self.hits = v.hits;
        }
    }
}

/// Why an image is not there: "yet" only while the build can still make it (a failed build's
/// images were said to be "not assembled yet" for good).
fn not_yet(ctx: &Ctx) -> &'static str {
    use trowel_events::state::Outcome;
    match ctx.model.outcome() {
        Outcome::Failed => ": the build failed",
        Outcome::Aborted => ": the build was stopped",
        Outcome::Finished => "",
        Outcome::Unfinished if matches!(ctx.mode, crate::tui::app::Mode::Replay) => ": the trace ends before",
        Outcome::Unfinished => " yet",
    }
}

/// In a build for several platforms: every platform's image (`▸` on the one whose layers are
/// listed: the Steps pane's platform, else the last) and the index naming them; nothing
/// otherwise.
fn image_lines<'a>(ctx: &Ctx, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let m = ctx.model;
    if m.platforms.len() < 2 {
        return Vec::new();
    }
    let shown = ctx.platform.clone().or_else(|| m.image.as_ref().and_then(|i| i.platform.clone()));
    let pw = m.platforms.iter().map(|p| p.chars().count()).max().unwrap_or(0);
    let mut out = Vec::new();
    for p in &m.platforms {
        let mark = if shown.as_deref() == Some(p.as_str()) { "▸ " } else { "  " };
        let text = match m.images.iter().find(|i| i.platform.as_deref() == Some(p.as_str())) {
            Some(i) => format!(
                "{mark}{} {}  {} layer(s), {}",
                format::fit(p, pw),
                format::digest_short(&i.manifest_digest),
                i.layers.len(),
                format::bytes(i.layers_size())
            ),
            None => format!("{mark}{} not assembled{}", format::fit(p, pw), not_yet(ctx)),
        };
        let style = if mark.starts_with('▸') { theme.text } else { theme.dim };
        out.push(Line::from(Span::styled(format::truncate(&text, width), style)));
    }
    if let Some(ix) = &m.index {
        let text = format!("  index {} ({})", format::digest_short(&ix.digest), short_media(&ix.media_type));
        out.push(Line::from(Span::styled(format::truncate(&text, width), theme.header)));
    }
    out.push(Line::default());
    out
}

fn details<'a>(ctx: &Ctx, l: &LayerSummary, report: &WasteReport, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let v = |s: String| vec![Span::styled(format::truncate(&s, width.saturating_sub(10)), theme.text)];
    let mut out = vec![
        field("digest", 10, v(l.digest.to_string()), theme.header),
        field("diff_id", 10, v(l.diff_id.as_ref().map_or_else(|| "—".into(), |d| d.to_string())), theme.header),
        field(
            "size",
            10,
            v(match l.uncompressed_size {
                Some(u) => format!("{} compressed, {} unpacked", format::bytes(l.size), format::bytes(u)),
                None => format!("{} compressed", format::bytes(l.size)),
            }),
            theme.header,
        ),
        field("type", 10, v(format!("{} ({})", short_media(&l.media_type), l.media_type)), theme.header),
    ];
    let maker = ctx.model.maker(l.step, l.shell, &l.digest);
    let mut by = format::one_line(&maker.describe());
    if let Maker::Step(s) = maker
        && let Some(note) = s.attempt_note()
    {
        by.push_str(&format!(" ({note})"));
    }
    out.push(field("made by", 10, v(by), theme.header));
    let w = wasted(ctx.model, l, report);
    if w > 0 {
        out.push(field("wasted", 10, vec![Span::styled(format::bytes(w), theme.waste)], theme.header));
    }
    out
}

fn waste_lines<'a>(layers: &[LayerSummary], report: &WasteReport, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let mut out = vec![Line::default()];
    // What the list cannot count, said before it (as the Files pane says what it cannot show).
    let caveat = |out: &mut Vec<Line<'a>>| {
        if let Some(first) = report.unknown.first() {
            let n = report.unknown.len();
            let more = if n > 1 { format!(" (+{} more)", n - 1) } else { String::new() };
            let text = format!("⚠ not counted: {first}{more}");
            out.push(Line::from(Span::styled(format::truncate(&text, width), theme.status_warn)));
        }
    };
    if report.items.is_empty() {
        if report.unknown.is_empty() {
            out.push(Line::from(Span::styled(
                "no waste: no step deleted or overwrote what an earlier one added",
                theme.dim,
            )));
        } else {
            out.push(Line::from(Span::styled("no waste found", theme.dim)));
            caveat(&mut out);
        }
        return out;
    }
    let image: u64 = layers.iter().map(|l| l.size).sum();
    out.push(Line::from(vec![
        Span::styled("waste ", theme.header),
        Span::styled(format::bytes(report.total), theme.waste),
        Span::styled(
            format!(
                " in {} version(s) hidden by later lines (image: {} compressed)",
                report.items.len(),
                format::bytes(image)
            ),
            theme.dim,
        ),
    ]));
    caveat(&mut out);
    let narrow = width < 70;
    for item in report.items.iter().take(WASTE_ROWS) {
        let from = item.added.label();
        let to = item.removed().label();
        let how = item.fate.label();
        // Lines keep their old columns; a shell's label widens only the rows that have one.
        let head = format!("{from:>4} → {to:<4} {how:<11} ");
        let size = format::fit_right(&format::bytes(item.bytes), 9);
        if narrow {
            out.push(Line::from(vec![Span::styled(head, theme.dim), Span::styled(size, theme.waste)]));
            let path = format::truncate_start(&format::sanitize(&item.path), width.saturating_sub(6));
            out.push(Line::from(Span::styled(format!("      {path}"), theme.text)));
        } else {
            let path_w = width.saturating_sub(head.len() + size.len() + 1);
            out.push(Line::from(vec![
                Span::styled(head, theme.dim),
                Span::styled(
                    format::fit(&format::truncate_start(&format::sanitize(&item.path), path_w), path_w),
                    theme.text,
                ),
                Span::styled(format!(" {size}"), theme.waste),
            ]));
        }
    }
    if report.items.len() > WASTE_ROWS {
        out.push(Line::from(Span::styled(format!("… and {} more", report.items.len() - WASTE_ROWS), theme.dim)));
    }
    // The word alone would not say why identical bytes are waste, nor what to do about it.
    if report.items.iter().take(WASTE_ROWS).any(|i| i.fate == waste::Fate::SameBytes) {
        out.push(Line::from(Span::styled(
            "same bytes: only its mode, owner or times changed; shipped whole again",
            theme.dim,
        )));
    }
    out
}
