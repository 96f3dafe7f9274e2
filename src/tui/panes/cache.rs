//! The Cache pane: the selected step's cache key, whether it hit or missed and why, and the
//! components the key is made of (instruction, parent key, variables, source files, the chain
//! of ancestor steps), and what reading from another stage or an image took it; for a FROM
//! step, where the stage's base came from and why a base-image cache directory did not serve it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Component, Ctx, Motion, Outcome, View, field, wrap};
use crate::tui::format;
use crate::tui::keymap::Action;
use crate::tui::theme::Theme;
use trowel_events::VarKind;
use trowel_events::state::{StepState, StepView};
use trowel_events::{BaseSource, CacheResult, LayerCacheUse};

const LABEL: usize = 12;

/// The pane's own state: how far it is scrolled (the step is the Steps pane's).
#[derive(Debug, Clone, Default)]
pub struct CachePane {
    /// First visible line; past the end until a frame clamps it.
    scroll: usize,
}

impl CachePane {
    pub fn step_changed(&mut self) {
        self.scroll = 0;
    }
}

impl Component for CachePane {
    fn handle(&mut self, action: Action, ctx: &Ctx) -> Outcome {
        match Motion::of(action, ctx.page) {
            Some(m) => {
                self.scroll = m.apply(self.scroll);
                Outcome::Done
            }
            None => Outcome::Ignored,
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, ctx: &Ctx, theme: &Theme) -> View {
        let lines = lines(ctx, theme, area.width as usize);
        let max = lines.len().saturating_sub(area.height as usize);
        let scroll = self.scroll.min(max);
        let visible: Vec<Line> = lines.into_iter().skip(scroll).take(area.height as usize).collect();
        frame.render_widget(Paragraph::new(visible), area);
        View::Cache(scroll)
    }

    fn drawn(&mut self, view: View) {
        if let View::Cache(scroll) = view {
            self.scroll = scroll;
        }
    }
}

fn short_key(k: &str) -> String {
    k.chars().take(12).collect()
}

/// A FROM step's lines: where the stage's base came from and, for an image pulled while a
/// base-image cache directory was given, why that directory did not serve it (not warmed, or
/// warmed longer ago than `--cache-ttl`): the question a build that pulled a base it was meant
/// to find locally raises, which the layer cache does not answer.
fn base<'a>(
    ctx: &Ctx,
    source: &BaseSource,
    multi: &impl Fn(&mut Vec<Line<'a>>, &str, &str, Style),
    theme: &Theme,
) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    match source {
        BaseSource::Registry { reference, manifest_digest, cache_dir_miss, .. } => {
            // The registry answered for the image; its layers may all have been unneeded (every step
            // served from the cache), so nothing here says they were downloaded.
            multi(&mut out, "base", &format!("from {reference}@{}", manifest_digest.short()), theme.text);
            if let Some(why) = cache_dir_miss {
                multi(&mut out, "cache dir", &format!("not used: {why}"), theme.status_warn);
            }
        }
        BaseSource::CacheDir { reference, manifest_digest } => {
            let text = format!("from the cache directory (trowel warm): {reference}@{}", manifest_digest.short());
            multi(&mut out, "base", &text, theme.text);
        }
        BaseSource::Stage { index } => {
            let name = ctx.model.stage(*index).map_or_else(|| format!("stage {index}"), |s| s.label());
            multi(&mut out, "base", &format!("{name}, built in this build"), theme.text)
        }
        BaseSource::Scratch => multi(&mut out, "base", "scratch (no layers)", theme.text),
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("a FROM step is not looked up in the layer cache", theme.dim)));
    out
}

/// Why a step has no lookup, each case in its own words. The build's `layer_cache` (recorded
/// since traces carry it) decides between "no cache" and the other reasons; for an older trace
/// only the lookups seen can, and where they cannot tell, both possibilities are said. (One
/// fallback used to say only RUN and WORKDIR were cached, long after COPY/ADD were looked up
/// with any flags, and "no layer cache" for a build whose steps all made no layer.)
fn not_looked_up(ctx: &Ctx, step: &StepView) -> &'static str {
    let finished = ctx.model.is_over();
    match step.state {
        StepState::Skipped => {
            return "not looked up in the layer cache: its stage is not needed for the target and was not built";
        }
        StepState::Pending | StepState::Running if finished => {
            return "not looked up in the layer cache: the build ended before this step ran";
        }
        StepState::Pending | StepState::Running => return "not looked up in the layer cache yet",
        _ => {}
    }
    let cache = ctx.model.layer_cache;
    if cache == Some(LayerCacheUse::Off) {
        return "no layer cache in this build (trowel build --cache)";
    }
    let kept_shell = ctx.model.steps().any(|s| {
        s.id.stage == step.id.stage
            && s.id.step <= step.id.step
            && s.shells.iter().any(|sh| sh.kept == Some(true) && (s.id.step < step.id.step || sh.before_step))
    });
    let looked_up = ctx.model.steps().any(|s| s.cache.is_some());
    let known_on = cache.is_some() || looked_up;
    if kept_shell {
        return if known_on {
            "not looked up in the layer cache: a debugger shell's changes were kept in this stage before it, so \
             nothing after them is read from or written to the cache"
        } else {
            "not looked up in the layer cache: the build has none (--cache), or a debugger shell's changes kept \
             in this stage before it keep the cache out of what follows (this trace does not say which)"
        };
    }
    let layer_step = ["RUN", "COPY", "ADD", "WORKDIR"].iter().any(|k| step.keyword.eq_ignore_ascii_case(k));
    if !layer_step {
        return if known_on {
            "this step makes no layer, so it has no cache entry of its own: the steps after it are keyed from it"
        } else {
            "this step makes no layer, so it has no cache entry of its own (whether the build has a layer cache, \
             --cache, this trace does not say)"
        };
    }
    let run_layer = ["RUN", "WORKDIR"].iter().any(|k| step.keyword.eq_ignore_ascii_case(k));
    match cache {
        Some(LayerCacheUse::On { run_layers: false, .. }) if run_layer => {
            "not looked up in the layer cache: RUN and WORKDIR layers are not cached (--cache-run-layers=false)"
        }
        Some(_) => {
            "not looked up in the layer cache: no key could be made for it (a step before it, or the base or \
             stage it is built on, could not be keyed)"
        }
        None if looked_up => {
            "not looked up in the layer cache: no key could be made for it, or its kind of layer is not cached \
             (--cache-run-layers=false); this trace does not say which"
        }
        None => {
            "no layer cache in this build (trowel build --cache), or no step of it was looked up (this trace does not say which)"
        }
    }
}

/// Every line of the pane (the caller scrolls).
pub fn lines<'a>(ctx: &Ctx, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let Some(step) = ctx.step else { return vec![] };
    let value_w = width.saturating_sub(LABEL).max(10);
    let multi = |out: &mut Vec<Line<'a>>, label: &str, text: &str, style| {
        for (i, l) in wrap(text, value_w).into_iter().enumerate() {
            out.push(field(if i == 0 { label } else { "" }, LABEL, vec![Span::styled(l, style)], theme.header));
        }
    };
    let Some(cache) = &step.cache else {
        if step.keyword.eq_ignore_ascii_case("FROM")
            && let Some(source) = ctx.model.stage(step.id.stage).and_then(|s| s.source.as_ref())
        {
            return base(ctx, source, &multi, theme);
        }
        let why = not_looked_up(ctx, step);
        let mut out: Vec<Line<'a>> =
            wrap(why, width).into_iter().map(|l| Line::from(Span::styled(l, theme.dim))).collect();
        mounts(&mut out, step, &multi, theme);
        reads(&mut out, step, &multi, theme);
        return out;
    };
    let mut out = Vec::new();
    match &cache.result {
        CacheResult::Hit { reference, layer } => {
            out.push(field("result", LABEL, vec![Span::styled(" hit ", theme.cache_hit)], theme.header));
            multi(&mut out, "from", reference, theme.text);
            if let Some(l) = layer {
                multi(&mut out, "layer", &format!("{} ({})", l.digest.short(), format::bytes(l.size)), theme.text);
            }
        }
        CacheResult::Miss { explanation, compared_with } => {
            out.push(field("result", LABEL, vec![Span::styled(" miss ", theme.cache_miss)], theme.header));
            multi(&mut out, "why", explanation, theme.status_warn);
            if let Some(c) = compared_with {
                multi(&mut out, "compared", &c.describe(), theme.dim);
            }
        }
        CacheResult::Error { message } => {
            out.push(field("result", LABEL, vec![Span::styled("lookup failed", theme.status_err)], theme.header));
            multi(&mut out, "error", message, theme.status_err);
        }
    }
    multi(&mut out, "key", &cache.key, theme.text);
    if let Some(s) = &cache.stored {
        multi(&mut out, "stored as", s, theme.dim);
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("what the key is made of", theme.header)));
    let c = &cache.components;
    multi(&mut out, "instruction", &c.instruction, theme.text);
    match &c.linked {
        Some(dest) => {
            multi(&mut out, "linked", &format!("{dest} (--link: not chained to the step before)"), theme.text)
        }
        None => multi(&mut out, "parent", &short_key(&c.parent), theme.text),
    }
    multi(&mut out, "platform", &c.platform, theme.text);
    multi(&mut out, "layers", &c.layer_format, theme.text);
    if let Some(ignored) = &c.ignored {
        let paths = if ignored.is_empty() { "nothing".to_string() } else { ignored.join(", ") };
        multi(&mut out, "left out", &paths, theme.text);
    }
    multi(&mut out, "format", &format!("v{}", c.version), theme.dim);
    if c.vars.is_empty() {
        multi(&mut out, "variables", "none used", theme.dim);
    }
    for (i, (k, v)) in c.vars.iter().enumerate() {
        let kind = match v.kind {
            VarKind::Arg => "ARG",
            VarKind::Env => "ENV",
        };
        let val = v.value.as_deref().unwrap_or("(unset)");
        multi(&mut out, if i == 0 { "variables" } else { "" }, &format!("{kind} {k}={val}"), theme.text);
    }
    for (i, f) in c.files.iter().enumerate() {
        let digest = f.digest.as_ref().map(|d| d.short().to_string()).unwrap_or_default();
        let text = format!("{} {} {} {}:{} {digest}", f.kind, format::octal(f.mode), f.path, f.uid, f.gid);
        multi(&mut out, if i == 0 { "files" } else { "" }, &text, theme.text);
    }
    for (i, (k, v)) in c.sources.iter().enumerate() {
        // A mount's entry is its whole spec (and what a bind shows); a stage's, a key. A
        // stage whose files are keyed (`from:`) is recorded to say why they changed, not keyed.
        let text = if let Some(stage) = k.strip_prefix("from:") {
            format!("stage {stage} → {} (not in the key: the files it gave are)", short_key(v))
        } else if k.starts_with("mount ") || k == "network" || k == "security" {
            format!("{k} → {v}")
        } else {
            format!("{k} → {}", short_key(v))
        };
        multi(&mut out, if i == 0 { "sources" } else { "" }, &text, theme.text);
    }
    if let Some(b) = &c.base {
        let d = b.digest.as_ref().map(|d| format!(" @ {}", d.short())).unwrap_or_default();
        multi(&mut out, "base", &format!("{}{d}", b.reference), theme.text);
    }
    for (i, link) in c.chain.iter().enumerate() {
        // A key records an ARG link as written (its value is in the variables above); the
        // build gave it another (`--build-arg V=2` over `ARG V=1`): shown as run, as the Steps
        // pane does, from this build's step at that line (this stage's, else the nearest
        // stage before it: a stage built FROM another chains through it).
        let ran = link.instruction.starts_with("ARG ").then(|| {
            let at_line = ctx.model.steps().filter(|s| s.line == link.line && s.id.stage <= step.id.stage);
            at_line.max_by_key(|s| s.id.stage).filter(|s| s.expanded.is_some()).map(|s| s.ran_line().to_string())
        });
        let shown = ran.flatten().unwrap_or_else(|| link.instruction.clone());
        let text = format!("L{} {} ({})", link.line, format::one_line(&shown), short_key(&link.key));
        multi(&mut out, if i == 0 { "chain" } else { "" }, &text, theme.dim);
    }
    mounts(&mut out, step, &multi, theme);
    reads(&mut out, step, &multi, theme);
    out
}

/// Adds a labelled, wrapped value to the pane's lines.
type Field<'f, 'a> = &'f dyn Fn(&mut Vec<Line<'a>>, &str, &str, ratatui::style::Style);

/// The step's mounts, and what of them its key covers (BuildKit's rules).
fn mounts<'a>(out: &mut Vec<Line<'a>>, step: &trowel_events::state::StepView, multi: Field<'_, 'a>, theme: &Theme) {
    if step.mounts.is_empty() {
        return;
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("mounts", theme.header)));
    for (i, m) in step.mounts.iter().enumerate() {
        multi(out, if i == 0 { "mounted" } else { "" }, &format::mount(m), theme.text);
    }
    multi(
        out,
        "in the key",
        "each mount's spec; what a bind mount shows (context files, a stage's key, an image's digest)",
        theme.dim,
    );
    multi(out, "never", "a cache mount's contents, a secret's value", theme.dim);
}

/// What the step had to do before it could read from other stages or images (take the paths
/// out of their layers, or make a whole root of them): a `COPY --from` that the cache does not
/// serve spends its time there, and this says where.
fn reads<'a>(out: &mut Vec<Line<'a>>, step: &trowel_events::state::StepView, multi: Field<'_, 'a>, theme: &Theme) {
    if step.reads.is_empty() {
        return;
    }
    out.push(Line::default());
    out.push(Line::from(Span::styled("read from", theme.header)));
    for r in &step.reads {
        multi(out, "", &r.line(), theme.text);
        if let Some(why) = &r.why {
            multi(out, "", &format!("a whole root: {why}"), theme.dim);
        }
    }
}
