//! The files `COPY --from` and `RUN --mount=from=` read from a stage or an image that has no
//! root: only the paths they read, extracted from its layers (`fs/extract.rs`), not the whole
//! stage. `COPY --from=builder /out /app` of a builder served from the cache then writes the
//! few files under `/out`, where unpacking the builder's Debian base alone wrote thousands.
//!
//! An extraction is kept for later readers of the same stage or image. A later reader whose
//! paths it covers uses it as it is; one that reads elsewhere gets a new extraction of what
//! both read (the old one is deleted): extending a finished extraction in place is not sound
//! (an opaque directory of a later layer would delete what an earlier pass wrote below it), and
//! a new extraction costs a read of the layers, which a full unpack costs too, while writing
//! only the files asked for. So that several copies from one stage (`COPY --from=builder /a`,
//! then `/b`, then `/c`) cost one extraction, not three, the first one also takes the paths
//! every `COPY --from` of that stage in the Dockerfile names without a variable ([`hints`]): a
//! hint only ever makes an extraction write more, so a wrong one costs time, never correctness.
//!
//! When the unpacked-layer store already holds most of the layers (a builder served from the
//! cache is its base and a few small layers), a root mounted from the store is cheaper still:
//! it downloads and unpacks only the layers the store lacks, where an extraction reads all of
//! them (`stages.rs`, `BuildContext::store_holds_most`).

use std::path::PathBuf;

use std::collections::HashMap;

use crate::dockerfile::{CopySource, Dockerfile, InstructionKind, Plan};
use crate::engine::context::BuildContext;
use crate::engine::error::BuildError;
use crate::engine::layer::StageLayer;
use crate::engine::steps::copy::reads::{fixed_prefix, reads};
use crate::fs::extract::{Extraction, extract};
use crate::fs::root::Root;
use crate::fs::unpack::UnpackStats;

/// What a reader of a stage's or an image's files reads.
#[derive(Debug, Clone)]
pub(crate) enum Need {
    /// Everything (no paths known).
    All,
    /// COPY/ADD source arguments, wildcards and all, as `sources::expand` takes them.
    Sources(Vec<String>),
    /// Literal paths, followed through symlinks (a RUN mount's `source`).
    Paths(Vec<String>),
    /// What each of several readers reads.
    Many(Vec<Need>),
}

impl Need {
    /// The paths an extraction must start from.
    fn prefixes(&self) -> Vec<String> {
        match self {
            Need::All => vec!["/".into()],
            Need::Sources(v) => v.iter().map(|s| fixed_prefix(s)).collect(),
            Need::Paths(v) => v.iter().map(|p| crate::engine::steps::join_clean("/", p)).collect(),
            Need::Many(v) => v.iter().flat_map(Need::prefixes).collect(),
        }
    }

    /// The resolved paths reading from `root` touches.
    pub(crate) fn reads(&self, root: &Root) -> Vec<String> {
        match self {
            Need::All => vec!["/".into()],
            Need::Sources(v) => v.iter().flat_map(|s| reads(root, s)).collect(),
            Need::Paths(v) => {
                v.iter().filter_map(|p| root.resolve(&crate::engine::steps::join_clean("/", p)).ok()).collect()
            }
            Need::Many(v) => v.iter().flat_map(|n| n.reads(root)).collect(),
        }
    }
}

/// A stage's or an image's files, partly extracted.
pub(crate) struct PartialRoot {
    /// The scratch directory holding it (deleted with it).
    pub scratch: PathBuf,
    pub extraction: Extraction,
}

impl PartialRoot {
    pub fn root(&self) -> &Root {
        &self.extraction.root
    }

    /// Whether `need` reads only what this extraction holds.
    pub fn serves(&self, need: &Need) -> bool {
        let read = need.reads(&self.extraction.root);
        self.extraction.covers_all(read.iter().map(String::as_str))
    }
}

/// What an extraction did, for the log and the trace.
pub(crate) struct Extracted {
    pub partial: PartialRoot,
    pub stats: UnpackStats,
    pub duration_ms: u64,
}

impl BuildContext<'_> {
    /// Extracts of `layers` what `need` reads (and what `keep` covers: an earlier extraction's
    /// prefixes), into a fresh scratch directory named after `name`. `Err(ms)` when the reads
    /// do not settle within the allowed passes, after `ms` spent trying: the caller unpacks
    /// everything.
    pub fn extract_for(
        &self,
        layers: &[StageLayer],
        name: &str,
        need: &Need,
        keep: &[String],
    ) -> Result<Result<Extracted, u64>, BuildError> {
        let t0 = std::time::Instant::now();
        self.fetch_blobs(layers)?;
        let scratch = self.scratch_dir(name)?;
        let mut prefixes = need.prefixes();
        prefixes.extend(keep.iter().cloned());
        let opts = self.unpack_options();
        let apply = |root: &Root, o: &crate::fs::unpack::UnpackOptions| {
            let mut total = UnpackStats::default();
            for l in layers {
                let s = self.unpack_verified(root, l, o, "extract")?;
                total.entries += s.entries;
                total.bytes += s.bytes;
                total.whiteouts += s.whiteouts;
                total.skipped += s.skipped;
            }
            Ok(total)
        };
        let what = format!("extract into {}", scratch.display());
        let fs_err = |source| BuildError::Fs { what: what.clone(), source };
        let found = extract(&scratch, &prefixes, &opts, fs_err, apply, |root| Ok(need.reads(root)))?;
        match found {
            Some(extraction) => {
                let stats = extraction.stats.clone();
                let duration_ms = t0.elapsed().as_millis() as u64;
                Ok(Ok(Extracted { partial: PartialRoot { scratch, extraction }, stats, duration_ms }))
            }
            None => {
                let _ = crate::fs::remove::remove_tree(&scratch);
                Ok(Err(t0.elapsed().as_millis() as u64))
            }
        }
    }
}

/// For each stage of `plan`, the source arguments of the `COPY --from` instructions naming it
/// (by name or index, without variables), those written without variables.
/// Only for a plan with one stage per Dockerfile stage (a build for several platforms plans a
/// stage several times; its copies are then extracted as they come).
pub(crate) fn hints(df: &Dockerfile, plan: &Plan) -> HashMap<usize, Vec<String>> {
    let mut out: HashMap<usize, Vec<String>> = HashMap::new();
    if plan.stages.len() != df.stages.len() {
        return out;
    }
    let by_name = |from: &str| {
        if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
            return from.parse::<usize>().ok().filter(|&i| i < plan.stages.len());
        }
        // One planned stage per Dockerfile stage here: its Dockerfile index is its index.
        plan.dockerfile_stage_named(from)
    };
    for (stage, planned) in df.stages.iter().zip(&plan.stages) {
        if !planned.needed {
            continue;
        }
        for i in &stage.instructions {
            let InstructionKind::Copy(args) = &i.kind else { continue };
            let Some(from) = args.flags.iter().rev().find(|f| f.name == "from").and_then(|f| f.value.as_deref()) else {
                continue;
            };
            let Some(p) = by_name(from).filter(|_| !from.contains('$')) else { continue };
            for src in &args.sources {
                if let CopySource::Path(raw) = src
                    && !raw.contains('$')
                {
                    out.entry(p).or_default().push(raw.clone());
                }
            }
        }
    }
    out
}
