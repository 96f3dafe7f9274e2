//! Recorded traces: every engine event of a build as JSON Lines, for `trowel replay` and for
//! reading what a CI build did after the fact.
//!
//! The first line is a header (`{"trowel_trace": VERSION, ...}`); every following line is one
//! [`Envelope`] (sequence number, milliseconds since the start, the event). Lines are flushed as
//! they are written, so a build killed half way leaves a readable trace.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use trowel_events::{Detail, Envelope, EventSink};

pub mod summary;

/// The format version this trowel writes: the event schema's ([`trowel_events::SCHEMA_VERSION`]).
/// Traces of every earlier version are read (their events parse as today's); newer ones are
/// refused.
pub const TRACE_VERSION: u32 = trowel_events::SCHEMA_VERSION;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub trowel_trace: u32,
    pub trowel_version: String,
    pub started: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("trace {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("trace {path}:{line}: {message}")]
    Format { path: String, line: usize, message: String },
}

/// An event sink writing a trace file.
pub struct TraceWriter {
    out: BufWriter<File>,
    path: String,
    failed: bool,
    content_limit: u64,
    /// Record the base image's layer listings (`--trace-base-listings`).
    base_listings: bool,
}

impl TraceWriter {
    /// Also records the base image's layer listings (`--trace-base-listings`).
    pub fn with_base_listings(mut self, on: bool) -> TraceWriter {
        self.base_listings = on;
        self
    }

    /// A trace at `path`; small text files a step changed are recorded up to `content_limit`
    /// bytes each (`--trace-content-limit`), so a replay can show their diffs.
    pub fn create(path: &Path, content_limit: u64) -> Result<TraceWriter, TraceError> {
        let p = path.display().to_string();
        let io = |source| TraceError::Io { path: p.clone(), source };
        let file = File::create(path).map_err(io)?;
        let mut out = BufWriter::new(file);
        let header = Header {
            trowel_trace: TRACE_VERSION,
            trowel_version: env!("CARGO_PKG_VERSION").to_string(),
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        serde_json::to_writer(&mut out, &header).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        out.flush().map_err(io)?;
        Ok(TraceWriter { out, path: p, failed: false, content_limit, base_listings: false })
    }
}

impl EventSink for TraceWriter {
    /// A trace shows what the live session showed: file contents, and the paths of layers
    /// taken from the cache.
    fn detail(&self) -> Detail {
        // Not `cached_diffs`: a fully cached CI build would download its base just for that.
        Detail {
            file_contents: Some(self.content_limit),
            cached_listings: true,
            cached_diffs: false,
            base_listings: self.base_listings,
            file_lists: true,
        }
    }

    fn event(&mut self, e: &Envelope) {
        if self.failed {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"))
            .and_then(|_| self.out.flush());
        if let Err(err) = r {
            // A full disk must not fail the build; the trace just stops.
            eprintln!("warning: trace {}: {err}; no further events recorded", self.path);
            self.failed = true;
        }
    }
}

/// Reads a trace: the header and every complete event line. A truncated last line (a build
/// killed mid-write) is ignored.
pub fn read(path: &Path) -> Result<(Header, Vec<Envelope>), TraceError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| TraceError::Io { path: p.clone(), source })?;
    let mut lines = BufReader::new(file).lines().enumerate().peekable();
    let fmt = |line: usize, message: String| TraceError::Format { path: p.clone(), line, message };
    let (_, first) = lines.next().ok_or_else(|| fmt(1, "empty trace".into()))?;
    let first = first.map_err(|source| TraceError::Io { path: p.clone(), source })?;
    let header: Header = serde_json::from_str(&first).map_err(|e| fmt(1, format!("not a trowel trace header: {e}")))?;
    if header.trowel_trace > TRACE_VERSION {
        return Err(fmt(
            1,
            format!(
                "written in trace format {}, newer than this trowel reads (1 to {TRACE_VERSION}): replay it with a \
                 newer trowel",
                header.trowel_trace
            ),
        ));
    }
    let mut events = Vec::new();
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(|source| TraceError::Io { path: p.clone(), source })?;
        match serde_json::from_str::<Envelope>(&line) {
            Ok(e) => events.push(e),
            Err(_) if lines.peek().is_none() => break,
            Err(e) => return Err(fmt(i + 1, e.to_string())),
        }
    }
    Ok((header, events))
}
