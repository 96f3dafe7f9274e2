//! Emitting events: the [`Emitter`] numbers and times each event, masks secrets in it, and
//! hands it to every sink.
//!
//! Masking fails closed. An event is masked by serialising it, masking every string (and map
//! key) that holds a secret, and reading it back; when the masked form is no longer a valid
//! event (a secret occurred inside a digest, whose masked form is no digest), the sinks get an
//! [`Event::Redacted`] placeholder naming the kind of event that was withheld, never the
//! original.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use trowel_events::{Detail, Envelope, Event, EventSink};

use crate::secrets::Redactor;

/// Fans events out to every sink. Cheap to clone; shared by the engine and its worker threads.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Mutex<EmitterInner>>,
    /// What the sinks asked for, fixed when the emitter is made.
    detail: Detail,
}

struct EmitterInner {
    sinks: Vec<Box<dyn EventSink>>,
    seq: u64,
    start: Instant,
    redactor: Redactor,
}

impl Emitter {
    pub fn new(sinks: Vec<Box<dyn EventSink>>) -> Emitter {
        Emitter::with_redactor(sinks, Redactor::default())
    }

    /// An emitter that masks secret values in every event before any sink sees it, so no log,
    /// trace or viewer ever holds them.
    pub fn with_redactor(sinks: Vec<Box<dyn EventSink>>, redactor: Redactor) -> Emitter {
        let detail = sinks.iter().fold(Detail::default(), |d, s| d.union(s.detail()));
        Emitter { inner: Arc::new(Mutex::new(EmitterInner { sinks, seq: 0, start: Instant::now(), redactor })), detail }
    }

    /// The extra detail the sinks want (the engine does that work only when asked).
    pub fn detail(&self) -> Detail {
        self.detail
    }

    /// How many trailing bytes of streamed output to hold back so a secret split across two
    /// chunks is still masked.
    pub fn holdback(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.redactor.max_len().saturating_sub(1)
    }

    /// Masks `more`'s secrets too, from now on (the build's own, whatever the emitter was made
    /// with).
    pub fn mask_also(&self, more: &Redactor) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.redactor = inner.redactor.merged(more);
    }

    pub fn emit(&self, event: Event) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let event = mask(&inner.redactor, event);
        let env = Envelope { seq: inner.seq, ms: inner.start.elapsed().as_millis() as u64, event };
        inner.seq += 1;
        for s in inner.sinks.iter_mut() {
            s.event(&env);
        }
    }

    /// Masks `values` as well from now on (secrets found once the build has started, such as
    /// credentials written in the Dockerfile's URLs). Masking only ever grows.
    pub fn add_secrets(&self, values: Vec<String>) {
        if values.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.redactor = inner.redactor.with(values);
    }

    /// Everything this emitter masks now: the build's secrets and those added since it
    /// started. A step that holds back streamed output until no secret can be split across two
    /// chunks needs this one, not the secrets known when the build started (a secret arg
    /// resolved at its ARG, a cloud login's token, would be cut in two and slip through).
    pub fn redactor(&self) -> Redactor {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).redactor.clone()
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning { message: message.into() });
    }
}

/// The event with every secret masked, or a placeholder when masking cannot give a valid event.
fn mask(redactor: &Redactor, event: Event) -> Event {
    if redactor.is_empty() {
        return event;
    }
    let withheld = |reason: String| {
        let v = serde_json::to_value(&event).ok();
        let kind = v.as_ref().and_then(|v| v["event"].as_str()).unwrap_or("unknown").to_string();
        Event::Redacted { withheld: kind, reason: redactor.redact(&reason) }
    };
    let mut v = match serde_json::to_value(&event) {
        Ok(v) => v,
        Err(e) => return withheld(format!("the event could not be serialised to mask it: {e}")),
    };
    if !redactor.redact_json(&mut v) {
        return event;
    }
    match serde_json::from_value::<Event>(v) {
        Ok(masked) => masked,
        Err(e) => withheld(format!("a secret value occurred where masking breaks the event ({e})")),
    }
}

/// When a transfer's progress is worth a `pull_progress` or `push_progress` event: at every
/// [`Self::STEP`] bytes and once at its end. The writers report the end more than once (their
/// last full batch, then the flush after it), and each end used to be an event, which the log
/// printed as a second `Pulled …` line for one download. A transfer that starts over (fewer bytes
/// than last reported: a retry) is reported again from its start.
#[derive(Debug, Default)]
pub(crate) struct ProgressGate {
    last: Option<u64>,
}

impl ProgressGate {
    pub(crate) const STEP: u64 = 4 << 20;

    /// Whether `done` of `total` bytes makes an event (and, if so, remembers it).
    pub(crate) fn due(&mut self, done: u64, total: u64) -> bool {
        if self.last.is_some_and(|l| done < l) {
            self.last = None;
        }
        let due = match self.last {
            None => done == total || done >= Self::STEP,
            Some(l) => (done == total && l != total) || done >= l + Self::STEP,
        };
        if due {
            self.last = Some(done);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trowel_events::{Digest, LayerSummary, StepId};

    /// Every 4 MiB and the end once, however often the writer reports the end; a retry is
    /// reported from its start.
    #[test]
    fn progress_is_reported_every_step_and_its_end_once() {
        const M: u64 = 1 << 20;
        let mut g = super::ProgressGate::default();
        let due: Vec<u64> =
            [M, 3 * M, 5 * M, 8 * M, 9 * M, 10 * M, 10 * M, 10 * M].into_iter().filter(|&d| g.due(d, 10 * M)).collect();
        assert_eq!(due, [5 * M, 9 * M, 10 * M]);
        // Started over: its progress and its end are reported again.
        let again: Vec<u64> = [0, 6 * M, 10 * M, 10 * M].into_iter().filter(|&d| g.due(d, 10 * M)).collect();
        assert_eq!(again, [6 * M, 10 * M]);
        // A small blob: its end alone, once.
        let mut g = super::ProgressGate::default();
        assert_eq!([84u64, 84].into_iter().filter(|&d| g.due(d, 84)).count(), 1);
    }

    fn collect(redactor: Redactor, events: Vec<Event>) -> Vec<Envelope> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = move |e: &Envelope| s.lock().unwrap().push(e.clone());
        let emitter = Emitter::with_redactor(vec![Box::new(sink)], redactor);
        for e in events {
            emitter.emit(e);
        }
        seen.lock().unwrap().clone()
    }

    #[test]
    fn a_secret_inside_a_digest_withholds_the_event() {
        // 8 hex digits that occur in the digest below: masking them leaves no valid digest.
        let digest: Digest = format!("sha256:{}c0ffee42{}", "0".repeat(28), "1".repeat(28)).parse().unwrap();
        let secret = "c0ffee42".to_string();
        let layer = LayerSummary {
            digest: digest.clone(),
            diff_id: None,
            size: 1,
            uncompressed_size: None,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            step: None,
            shell: None,
        };
        let id = StepId { stage: 0, step: 1 };
        let seen = collect(
            Redactor::new([secret.clone()]),
            vec![
                Event::LayerWritten { id, layer, entries: 1, duration_ms: 0 },
                Event::Warning { message: format!("token {secret} leaked?") },
            ],
        );
        let all = serde_json::to_string(&seen).unwrap();
        assert!(!all.contains(&secret), "{all}");
        match &seen[0].event {
            Event::Redacted { withheld, reason } => {
                assert_eq!(withheld, "layer_written");
                assert!(reason.contains("masking"), "{reason}");
            }
            other => panic!("the event reached the sink: {other:?}"),
        }
        assert_eq!(seen[1].event, Event::Warning { message: "token *** leaked?".into() });
        assert_eq!((seen[0].seq, seen[1].seq), (0, 1));
    }

    #[test]
    fn a_builds_secrets_are_masked_by_an_emitter_made_without_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = move |e: &Envelope| s.lock().unwrap().push(e.clone());
        let emitter = Emitter::new(vec![Box::new(sink)]);
        emitter.mask_also(&Redactor::new(["npm_secret_token".to_string()]));
        emitter.warn("token npm_secret_token");
        assert_eq!(seen.lock().unwrap()[0].event, Event::Warning { message: "token ***".into() });
    }

    #[test]
    fn events_without_secrets_pass_unchanged() {
        let e = Event::Warning { message: "nothing to hide".into() };
        let seen = collect(Redactor::new(["s3cr3t-value".to_string()]), vec![e.clone()]);
        assert_eq!(seen[0].event, e);
    }
}
