//! The push review: before anything is pushed, the final manifest and config digests, the
//! destinations, and each layer (with the step or debugger shell session that made it) with
//! whether each destination already has it (so what will actually be uploaded). `y` pushes,
//! `n` aborts; once pushing, the same popup shows each blob's progress and the result per
//! destination, and a layer's column says what the push did with it (uploaded, mounted from
//! another repository, already there) instead of what the review expected. For a build for
//! several platforms it is the image index (its digest and media type) and, under it, each
//! platform's manifest, config and layers, the same way.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{field, wrap};
use crate::tui::app::{App, Popup, Waiting};
use crate::tui::format;
use crate::tui::theme::Theme;
use trowel_events::{BlobPushAction, Digest, PushReview, ReviewLayer};

/// Draws the popup's content; returns the first line shown (the scroll, clamped).
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) -> Option<usize> {
    let Some(Popup::Review { scroll, decided }) = app.popup else { return None };
    let lines = lines(app, theme, area.width as usize, decided);
    let max = lines.len().saturating_sub(area.height as usize);
    let scroll = scroll.min(max);
    let visible: Vec<Line> = lines.into_iter().skip(scroll).take(area.height as usize).collect();
    frame.render_widget(Paragraph::new(visible), area);
    Some(scroll)
}

pub fn lines<'a>(app: &App, theme: &Theme, width: usize, decided: bool) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let v = |s: String| vec![Span::styled(format::truncate(&s, width.saturating_sub(10)), theme.text)];
    match &app.model.review {
        Some(r) => {
            // An image the debugger changed is not what a CI build of the Dockerfile makes.
            let deviations = app.model.deviations();
            if !deviations.is_empty() {
                let warn = "This image is not what the Dockerfile as written makes:";
                out.push(Line::from(Span::styled(warn, theme.status_warn)));
                for d in deviations {
                    out.push(Line::from(Span::styled(format::truncate(&format!("  {d}"), width), theme.status_warn)));
                }
                out.push(Line::default());
            }
            // An index: its digest and type at the top, each platform's manifest below.
            let index = !r.platforms.is_empty();
            out.push(field(
                if index { "index" } else { "manifest" },
                10,
                v(r.manifest_digest.to_string()),
                theme.header,
            ));
            if let Some(c) = &r.config_digest {
                out.push(field("config", 10, v(c.to_string()), theme.header));
            }
            out.push(field("type", 10, v(r.media_type.clone()), theme.header));
            for (i, d) in r.destinations.iter().enumerate() {
                out.push(field(if i == 0 { "push to" } else { "" }, 10, v(d.clone()), theme.header));
            }
            out.push(Line::default());
            let dests = r.destinations.len();
            let mut tally = Tally {
                upload: vec![(0, 0); dests],
                mount: vec![0; dests],
                sent: vec![(0, 0, 0); dests],
                seen: Default::default(),
            };
            if index {
                for (i, p) in r.platforms.iter().enumerate() {
                    if i > 0 {
                        out.push(Line::default());
                    }
                    let head = format!("{} · {}", p.platform, p.media_type);
                    out.push(Line::from(Span::styled(format::truncate(&head, width), theme.header)));
                    out.push(field("manifest", 10, v(p.manifest_digest.to_string()), theme.header));
                    out.push(field("config", 10, v(p.config_digest.to_string()), theme.header));
                    layer_rows(app, theme, width, r, &p.layers, &mut tally, &mut out);
                }
            } else {
                layer_rows(app, theme, width, r, &r.layers, &mut tally, &mut out);
            }
            let Tally { upload, mount, sent, .. } = tally;
            let what = if index { "configs, manifests and index" } else { "config and manifest" };
            for (d, (n, bytes)) in upload.iter().enumerate() {
                let to = if dests > 1 { format!(" to dest {}", d + 1) } else { String::new() };
                let done =
                    r.destinations.get(d).and_then(|dest| app.model.pushes.iter().find(|p| &p.destination == dest));
                let text = match (done, sent[d]) {
                    // The push said what it did: that, not what the review expected.
                    (Some(_), (up, up_bytes, mounted))
                        if up + mounted > 0 || done.is_some_and(|p| p.finished.is_some()) =>
                    {
                        format!(
                            "pushed{to}: {up} layer(s) uploaded ({}), {mounted} mounted from another repository",
                            format::bytes(up_bytes)
                        )
                    }
                    _ if mount[d] > 0 => format!(
                        "to upload{to}: {n} layer(s), {} (plus the {what}); {} to mount from another repository",
                        format::bytes(*bytes),
                        mount[d]
                    ),
                    _ => format!("to upload{to}: {n} layer(s), {} (plus the {what})", format::bytes(*bytes)),
                };
                out.push(Line::from(Span::styled(format::truncate(&text, width), theme.dim)));
            }
        }
        None => {
            let text = "no review: this build pushed without asking (trowel build); trowel debug asks first";
            out.extend(wrap(text, width).into_iter().map(|l| Line::from(Span::styled(l, theme.dim))));
        }
    }
    out.push(Line::default());
    if !decided && app.waiting == Some(Waiting::Push) {
        out.push(Line::from(vec![
            Span::styled("Push now? ", theme.status_warn),
            Span::styled("y", theme.key),
            Span::styled(" push   ", theme.text),
            Span::styled("n", theme.key),
            Span::styled(" abort the build (nothing is pushed)", theme.text),
        ]));
        return out;
    }
    out.extend(progress(app, theme, width));
    out
}

/// What the layers under review come to per destination: the blobs it lacks (unknown counts as
/// to upload: count, bytes), those it will mount, and once the push said what it did with each,
/// what it sent (uploaded, bytes, mounted). A blob two platforms share is counted once.
struct Tally {
    upload: Vec<(usize, u64)>,
    mount: Vec<usize>,
    sent: Vec<(usize, u64, usize)>,
    seen: std::collections::HashSet<(usize, Digest)>,
}

/// The table of an image's layers: one row each, one presence column per destination
/// (numbered when there are several), and their count and size.
fn layer_rows<'a>(
    app: &App,
    theme: &Theme,
    width: usize,
    r: &PushReview,
    layers: &[ReviewLayer],
    tally: &mut Tally,
    out: &mut Vec<Line<'a>>,
) {
    let dests = r.destinations.len();
    let col = 9;
    // Named as in the Layers pane (`L6 RUN ✎` for a step edited at a failure pause), the
    // column as wide as the longest name.
    let steps: Vec<String> =
        layers.iter().map(|l| super::layers::made_by(&app.model, l.step, l.shell, &l.digest)).collect();
    let step_w = steps.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(8);
    let mut head = format!(
        "{:>2} {} {} {} ",
        "#",
        format::fit("layer", 12),
        format::fit_right("size", 9),
        format::fit("step", step_w)
    );
    for i in 0..dests {
        head.push_str(&format::fit_right(&if dests > 1 { format!("dest {}", i + 1) } else { "registry".into() }, col));
    }
    out.push(Line::from(Span::styled(format::truncate(&head, width), theme.header)));
    for (i, (l, step)) in layers.iter().zip(&steps).enumerate() {
        let mut spans = vec![
            Span::styled(format!("{:>2} ", i + 1), theme.line_number),
            Span::styled(format!("{} ", format::fit(&format::digest_short(&l.digest), 12)), theme.text),
            Span::styled(format!("{} ", format::fit_right(&format::bytes(l.size), 9)), theme.text),
            Span::styled(format!("{} ", format::fit(step, step_w)), theme.dim),
        ];
        for (d, p) in l.present.iter().enumerate() {
            let done = r.destinations.get(d).and_then(|dest| pushed(app, dest, &l.digest));
            // The push asks the destination to mount it from another repository.
            let mountable = l.mount_from.get(d).is_some_and(Option::is_some) && *p != Some(true);
            let (t, s) = match (done, p) {
                (Some(BlobPushAction::Uploaded), _) => ("uploaded", theme.status_warn),
                (Some(BlobPushAction::Mounted), _) => ("mounted", theme.status_ok),
                (Some(BlobPushAction::Existed), _) => ("exists", theme.status_ok),
                (None, Some(true)) => ("exists", theme.status_ok),
                (None, _) if mountable => ("mount", theme.status_ok),
                (None, Some(false)) => ("upload", theme.status_warn),
                (None, None) => ("unknown", theme.dim),
            };
            spans.push(Span::styled(format::fit_right(t, col), s));
            if !tally.seen.insert((d, l.digest.clone())) {
                continue;
            }
            if mountable {
                tally.mount[d] += 1;
            } else if *p != Some(true)
                && let Some(u) = tally.upload.get_mut(d)
            {
                u.0 += 1;
                u.1 += l.size;
            }
            if let (Some(a), Some(c)) = (done, tally.sent.get_mut(d)) {
                match a {
                    BlobPushAction::Uploaded => {
                        c.0 += 1;
                        c.1 += l.size;
                    }
                    BlobPushAction::Mounted => c.2 += 1,
                    BlobPushAction::Existed => {}
                }
            }
        }
        out.push(Line::from(spans));
    }
    let total: u64 = layers.iter().map(|l| l.size).sum();
    out.push(Line::from(Span::styled(
        format!("{} layer(s), {} in all", layers.len(), format::bytes(total)),
        theme.dim,
    )));
}

/// What the push did with a blob at a destination, once it said.
fn pushed(app: &App, destination: &str, digest: &trowel_events::Digest) -> Option<BlobPushAction> {
    let p = app.model.pushes.iter().find(|p| p.destination == destination)?;
    p.blobs.iter().find(|b| &b.digest == digest).and_then(|b| b.done)
}

/// Per destination: each blob's upload and the final result.
fn progress<'a>(app: &App, theme: &Theme, width: usize) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    if app.model.pushes.is_empty() {
        let text = if app.model.is_over() { "nothing was pushed" } else { "waiting for the push to start…" };
        out.push(Line::from(Span::styled(text, theme.dim)));
        return out;
    }
    for p in &app.model.pushes {
        let head = match &p.finished {
            Some((d, ms)) => Span::styled(
                format!("✓ {} → {} in {}", p.destination, format::digest_short(d), format::duration_ms(*ms)),
                theme.status_ok,
            ),
            None => Span::styled(format!("▶ {}", p.destination), theme.running),
        };
        out.push(Line::from(head));
        for b in &p.blobs {
            let state = match b.done {
                Some(BlobPushAction::Uploaded) => "uploaded".to_string(),
                Some(BlobPushAction::Existed) => "already there".to_string(),
                Some(BlobPushAction::Mounted) => "mounted".to_string(),
                None if b.total > 0 => format!("{}%", b.sent * 100 / b.total),
                None => "…".to_string(),
            };
            let text = format!(
                "  {} {} {state}",
                format::digest_short(&b.digest),
                format::fit_right(&format::bytes(b.total), 9)
            );
            out.push(Line::from(Span::styled(format::truncate(&text, width), theme.dim)));
        }
    }
    if let Some(f) = &app.model.failure {
        for l in wrap(&f.error, width) {
            out.push(Line::from(Span::styled(l, theme.status_err)));
        }
    }
    out
}
