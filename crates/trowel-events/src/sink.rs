//! How events travel: each wrapped in an [`Envelope`] (its order and time), handed to every
//! [`EventSink`].

use serde::{Deserialize, Serialize};

use crate::Event;

/// An event with its sequence number and the milliseconds since the build started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Envelope {
    /// 0, 1, 2… in the order the events were emitted.
    pub seq: u64,
    /// Milliseconds since the build started.
    pub ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// What detail a sink wants beyond the events every build reports. The engine does the extra
/// work (reading files, downloading cached layers) only when some sink asks for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detail {
    /// `file_contents` events: small text files' content before and after each step, up to
    /// this many bytes per file.
    pub file_contents: Option<u64>,
    /// `snapshot` events for steps served from the cache even when no build root exists (the
    /// engine then downloads and lists the cached layer).
    pub cached_listings: bool,
    /// A listed cached layer's paths told apart as added, modified or deleted against the
    /// layers below (with their metadata and digest before), as for a step that ran. In a stage
    /// that is cached so far this downloads the base image's layers, which a fully cached build
    /// otherwise never needs: the live debugger asks, a trace recorded in CI does not.
    pub cached_diffs: bool,
    /// `base_layer_listed` events: every base-image layer's entries, for a view of the whole
    /// file system at a step (the debugger's Files pane). This downloads the base image's
    /// layers even where a fully cached build would not need them: the live debugger asks, a
    /// trace asks only with `--trace-base-listings`.
    pub base_listings: bool,
    /// Per-file lists: every changed path in `snapshot` events and every source file in a
    /// `cache_lookup`'s key (`components.files`). Without it a `snapshot` carries only how many
    /// paths changed (`SnapshotStats::unlisted`) and a key no files: a big COPY's lists are
    /// among a build's biggest structures, and a log prints only their length.
    pub file_lists: bool,
}

impl Detail {
    /// What two sinks want together.
    pub fn union(self, other: Detail) -> Detail {
        Detail {
            file_contents: match (self.file_contents, other.file_contents) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            cached_listings: self.cached_listings || other.cached_listings,
            cached_diffs: self.cached_diffs || other.cached_diffs,
            base_listings: self.base_listings || other.base_listings,
            file_lists: self.file_lists || other.file_lists,
        }
    }
}

/// A consumer of events. Sinks are called on the engine's threads, one event at a time and in
/// order; they must be quick (hand slow work to a thread of their own).
pub trait EventSink: Send {
    fn event(&mut self, e: &Envelope);

    /// The extra detail this sink wants (none by default).
    fn detail(&self) -> Detail {
        Detail::default()
    }
}

impl<F: FnMut(&Envelope) + Send> EventSink for F {
    fn event(&mut self, e: &Envelope) {
        self(e)
    }
}

#[cfg(test)]
mod tests {
    use super::Detail;

    #[test]
    fn detail_union_takes_the_most_of_each() {
        let a = Detail {
            file_contents: Some(10),
            cached_listings: false,
            cached_diffs: true,
            base_listings: true,
            file_lists: false,
        };
        let b = Detail {
            file_contents: Some(64),
            cached_listings: true,
            cached_diffs: false,
            base_listings: false,
            file_lists: true,
        };
        assert_eq!(
            a.union(b),
            Detail {
                file_contents: Some(64),
                cached_listings: true,
                cached_diffs: true,
                base_listings: true,
                file_lists: true
            }
        );
        assert_eq!(Detail::default().union(a), a);
    }
}
