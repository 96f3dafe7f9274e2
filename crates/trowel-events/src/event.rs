//! The events themselves: one enum, each variant a moment of the build with everything a
//! viewer needs to show it (so a replay from a trace shows what the live session showed).
//!
//! Serialised with `"event": "<snake_case name>"` beside the variant's fields; see
//! `docs/trace-format.md`, which is generated from these types.

use serde::{Deserialize, Serialize};

use crate::{
    BaseSource, BlobPushAction, CacheResult, ContextOrigin, Digest, IndexEntry, LayerSummary, MountInfo, OutputStream,
    RootIndex, StagePlan, StepId, StepStatus,
};
use crate::{
    Change, FileContent, KeyComponents, LayerCacheUse, PauseReason, PushReview, ResumeAction, SnapshotStats, When,
};

fn is_zero(n: &u64) -> bool {
    *n == 0
}
/// One moment of a build. The variant's name, in snake case, is the `event` field of its line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The first event: what is built, from what, and the plan of every stage and step.
    BuildStarted {
        /// The trowel that ran the build.
        version: String,
        dockerfile_path: String,
        /// The whole Dockerfile.
        dockerfile_text: String,
        /// The build context directory.
        context: String,
        /// Where the context came from when it is not a local directory (`--context tar://…`,
        /// `git://…`): fetched into `context` before the build started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_origin: Option<ContextOrigin>,
        /// `--target`, if given.
        target: Option<String>,
        /// Where the image is pushed (none with `--no-push`).
        destinations: Vec<String>,
        /// `os/arch[/variant]`: the target platform (the first, in a build for several).
        platform: String,
        /// Every target platform, in the order given, when the build is for several (the
        /// pushed image is then an index of one manifest per platform); empty otherwise.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        platforms: Vec<String>,
        /// How RUN steps are isolated: `chroot`, `container` or `rootless`.
        isolation: String,
        /// `--single-snapshot`: no step takes a snapshot of its own; each stage's changes are
        /// one snapshot taken after its last step, reported (`snapshot`, `layer_written`) with
        /// that step's id. They are the whole stage's, not that step's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        single_snapshot: bool,
        /// The build's layer cache. Absent (`null`) in traces of a trowel before it was
        /// recorded: a viewer then cannot tell a build without a cache from one that has not
        /// looked anything up yet, and says so.
        #[serde(default)]
        layer_cache: Option<LayerCacheUse>,
        stages: Vec<StagePlan>,
    },
    /// Something the person should know; the build goes on.
    Warning { message: String },
    /// A build check found something (BuildKit's rules, as `docker build --check` and `trowel
    /// check` report them): before anything is pulled for what the Dockerfile alone decides,
    /// when a stage's base image is resolved for what depends on it (its ENV, SHELL, platform).
    Check {
        /// The rule's name (`JSONArgsRecommended`), as `# check=skip=` takes it.
        rule: String,
        /// What the rule is about.
        description: String,
        /// The rule's documentation page (absent for `InvalidBaseImagePlatform`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// What is wrong, in BuildKit's words.
        message: String,
        /// The first Dockerfile line it is about (1-based).
        line: usize,
        /// Its last line (inclusive).
        end_line: usize,
        /// With `check=error=true`: findings are errors and fail the build (a `build_failed`
        /// follows the last of them).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        error: bool,
    },
    /// A stage begins (stages the target does not need never do).
    StageStarted {
        stage: usize,
        name: Option<String>,
        /// The base as written after ARG expansion.
        base: String,
    },
    /// A stage's base image is known.
    BaseResolved {
        stage: usize,
        source: BaseSource,
        /// `null` for `scratch` and stage bases.
        config_digest: Option<Digest>,
        layers: Vec<LayerSummary>,
    },
    /// The entries of one layer of a stage's base image, as its tar has them: every path
    /// `added`, whiteouts `deleted`, opaque directories `opaque`. Only when a sink asks for
    /// it (the debugger does; a trace with `--trace-base-listings`), after `base_resolved`,
    /// once per layer and stage whose base is a registry image; together with the steps'
    /// `snapshot` events they give the whole file system at any step.
    BaseLayerListed {
        stage: usize,
        /// The layer's position in `base_resolved`'s `layers` (0 is the bottom).
        index: usize,
        /// The compressed blob's digest.
        digest: Digest,
        changes: Vec<Change>,
    },
    /// A layer is downloading from `reference`: a base image's, or one the cache serves (`done`
    /// of `total` bytes; every 4 MiB, and once when `done` reaches `total`, again if the
    /// download starts over).
    PullProgress { reference: String, digest: Digest, done: u64, total: u64 },
    /// A stage's build root was made from its base layers: unpacked into a directory, or (in
    /// chroot isolation, with a cache dir) mounted as an overlay of the unpacked-layer store,
    /// where layers other builds already unpacked are used as they are.
    BaseUnpacked {
        stage: usize,
        layers: usize,
        /// Files, directories and links created: of the layers unpacked now only (none were
        /// for the layers the store already had).
        entries: u64,
        /// Bytes of file data written, of the layers unpacked now only.
        bytes: u64,
        /// From when the step asked for the root to when it was ready: a layer still
        /// downloading then is unpacked as it arrives, so the download's rest is part of it.
        duration_ms: u64,
        /// The root was mounted from the unpacked-layer store (`<cache-dir>/unpacked`), and
        /// this many of its `layers` were in the store already (unpacked by an earlier build,
        /// so nothing was written for them); the others were unpacked into the store now.
        /// Absent when the root was unpacked into a directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_store: Option<usize>,
        /// Why the root was unpacked into a directory instead of being mounted from the
        /// unpacked-layer store (`no cache dir …`, `container isolation unpacks into /`, or in
        /// the work dir for a stage that runs nothing, overlayfs not mountable there, a layer
        /// overlayfs cannot hold). Absent when mounted from the store, and for an empty root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_unused: Option<String>,
        /// How a root mounted from the store got the index its first snapshot compares with
        /// (part of `duration_ms`). Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<RootIndex>,
    },
    /// The files a `COPY --from` or a RUN's `--mount=from=` reads were taken out of the layers
    /// of a stage or an image that had no build root, instead of unpacking it whole: every
    /// layer was read and checked against its diff_id, but only what lies at and below
    /// `paths` (and every directory and symlink, so paths resolve as in the whole image) was
    /// written. Sent before the step that reads them uses them; not a stage's root (there is
    /// no `base_unpacked` for it).
    SourceExtracted {
        /// The step that reads them, whose time holds this work (absent in older traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_step: Option<StepId>,
        /// The stage read from; absent for an image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<usize>,
        /// The image read from, as written; absent for a stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// The image paths at and below which every file was written: as the readers name
        /// them and where the symlinks on them lead; earlier readers' of the same stage or
        /// image included.
        paths: Vec<String>,
        /// How many layers were read.
        layers: usize,
        /// Files, directories and links created.
        entries: u64,
        /// Entries read and checked but not written.
        skipped: u64,
        /// Bytes of file data written.
        bytes: u64,
        /// How many times the layers were read: more than once when what the reader reads
        /// led outside `paths` (a symlinked directory, a hard link to a file elsewhere).
        passes: usize,
        /// From the first layer's download (if any was missing) to the last pass's end.
        duration_ms: u64,
    },
    /// What a `COPY --from` or a RUN's `--mount=from=` reads comes from a whole root of a
    /// stage that had none left (its own went once no step of it needed it) or of an image:
    /// mounted from the unpacked-layer store, or unpacked into a directory. Sent before the
    /// step that reads it uses it, once per stage or image; when only the paths read were
    /// taken out of the layers, `source_extracted` is sent instead.
    SourceUnpacked {
        /// The step that reads them, whose time holds this work (absent in older traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_step: Option<StepId>,
        /// The stage read from; absent for an image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<usize>,
        /// The image read from, as written; absent for a stage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        /// Why a whole root rather than the paths read: `the unpacked-layer store holds most
        /// of its layers`, `the step reads every file of it`, or that an extraction could not
        /// settle, with how long it tried (that time is the step's too).
        why: String,
        layers: usize,
        /// Files, directories and links created: of the layers unpacked now only (none were
        /// for the layers the store already had).
        entries: u64,
        /// Bytes of file data written, of the layers unpacked now only.
        bytes: u64,
        /// From when the reader asked for the root to when it was ready, downloads included.
        duration_ms: u64,
        /// The root was mounted from the unpacked-layer store, and this many of its `layers`
        /// were in the store already; the others were unpacked into the store now. Absent
        /// when the root was unpacked into a directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_store: Option<usize>,
        /// Why the root was unpacked into a directory instead of being mounted from the
        /// unpacked-layer store. Absent when mounted from the store.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        store_unused: Option<String>,
        /// As `base_unpacked`'s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        index: Option<RootIndex>,
    },
    /// A COPY/ADD that was deferred (`step_finished` status `deferred`) ran after all: a later
    /// step read its stage (`source_unpacked`, whose `why` names it), or needed the root of a
    /// stage built on it or of its own stage (`base_unpacked`), and it was run into that root.
    /// Its time is inside `for_step`'s; this says how much of it was this step's.
    DeferredRun {
        id: StepId,
        /// The step that needed its files and whose time holds this run.
        for_step: StepId,
        /// Running it (its copy) and applying the cached layers above it.
        duration_ms: u64,
        /// The stage whose files `for_step` reads (a `COPY --from`, a `RUN --mount=from=`): it
        /// ran into a root of that stage made for the reader. Absent: it ran into the root of
        /// `for_step`'s own stage, which the step needs (and in older traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reading: Option<usize>,
    },
    /// A step begins.
    StepStarted {
        id: StepId,
        line: usize,
        end_line: usize,
        keyword: String,
        /// The instruction as written.
        source: String,
        /// The instruction after variable expansion, as shown in logs and history.
        expanded: String,
        /// A RUN's `--mount`s, resolved (absolute targets, defaults filled in). Never holds a
        /// secret's value. Absent when the step has none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<MountInfo>,
        /// Set when the step starts again after it failed (the debugger's retry); absent for a
        /// step's first start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<crate::Attempt>,
    },
    /// A chunk of a RUN's output (or of a debugger shell session's), as it came: a line may be
    /// split across chunks.
    Output { id: StepId, stream: OutputStream, data: String },
    /// What a step changed in the build root (after every step that can change files). For a
    /// cached layer that was not unpacked, the layer's entries (see `classified`).
    Snapshot {
        id: StepId,
        changes: Vec<Change>,
        stats: SnapshotStats,
        /// Set when `changes` are a layer's entries rather than a walk of a root (a cached
        /// layer that was not unpacked, a `COPY --link` made without a root): `true` when they
        /// were compared with the layers below, so kinds and `previous` are as for a walk (the
        /// debugger asks for that); `false` when they were not (a trace does not ask: it would
        /// download the base for it): then `added` means only "in the layer", added or
        /// modified, and a `deleted` path's `file_type` and metadata are its whiteout's, not
        /// what was deleted. Absent in older traces, which listed such layers unclassified;
        /// readers know those by their all-zero `stats`, no `previous` and no `modified`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classified: Option<bool>,
    },
    /// Small text files' content before and after a step (`--trace-content-limit`, default
    /// 64KiB per file). A step with many has several of these, each holding about 1 MiB of
    /// content (and the file that reached it): a reader adds a step's events up. Traces before
    /// this had one per step.
    FileContents { id: StepId, files: Vec<FileContent> },
    /// A step (or a kept shell session) made a layer.
    LayerWritten {
        id: StepId,
        layer: LayerSummary,
        /// Tar entries in it.
        entries: u64,
        /// Time to write it: the changed paths read into a tar, compressed and digested (and sent
        /// to the cache repository or the destination as it was written, when it was). Applying
        /// a `--link` layer to the stage and what a viewer asked for (files' old digests) are
        /// not in it.
        duration_ms: u64,
    },
    /// A step ended.
    StepFinished {
        id: StepId,
        status: StepStatus,
        /// Time the step itself took, from its `step_started`: the pause before it (and debugger
        /// shell sessions in that pause) is not in it, it is `paused_ms`. Version 1 traces counted it in.
        duration_ms: u64,
        /// Time spent paused before the step ran (shell sessions included). A pause after the
        /// step comes after this event: its `resumed` event says how long it lasted.
        #[serde(default, skip_serializing_if = "is_zero")]
        paused_ms: u64,
        /// Digest of the layer this step added, if any.
        layer: Option<Digest>,
        /// A failed RUN's exit code.
        exit_code: Option<i32>,
    },
    /// A cacheable step's lookup (with `--cache`), or a COPY/ADD's lookup in the local layer
    /// store (with `--cache` and a usable `--cache-dir`, without `--cache-copy-layers`).
    CacheLookup {
        id: StepId,
        /// The cache key (the tag of the entry in the cache repository, or the name of the
        /// local store's entry file).
        key: String,
        components: Box<KeyComponents>,
        result: CacheResult,
    },
    /// A step's layer was written to the cache repository (or to the local layer store).
    CacheStored {
        id: StepId,
        key: String,
        /// The cache entry's image reference (`local:<path of the entry file>` for the local
        /// layer store, `registry-ref:<cache repository>:<key>` for a layer reference record,
        /// which names a COPY/ADD layer of the pushed image and holds no layer itself).
        reference: String,
        /// The layer was uploaded while it was being written (else after, from the store).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        streamed: bool,
    },
    /// At the end of a build with `--cache`.
    CacheSummary {
        hits: usize,
        misses: usize,
        /// Compressed bytes of the cached layers used.
        bytes_reused: u64,
    },
    /// A stage's steps are done.
    StageFinished {
        stage: usize,
        /// From the stage's start to its end, less the time its steps were paused in a debugger
        /// (and its shell sessions in those pauses), as for a step.
        duration_ms: u64,
        /// Layers of the stage's image (its base's included).
        layers: usize,
    },
    /// The final image exists locally (before any push).
    ImageAssembled {
        manifest_digest: Digest,
        config_digest: Digest,
        /// The manifest's media type.
        media_type: String,
        /// Bytes of its config and (compressed) layers.
        size: u64,
        layers: Vec<LayerSummary>,
        /// The image config, as written.
        config: serde_json::Value,
        /// The manifest, as written.
        manifest: serde_json::Value,
        /// In a build for several platforms: the platform this image is (one such event each,
        /// then `index_assembled`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        platform: Option<String>,
    },
    /// A build for several platforms: the image index naming each platform's manifest (what
    /// is pushed and what `--digest-file` names).
    IndexAssembled {
        digest: Digest,
        /// The index's media type (OCI image index or Docker manifest list).
        media_type: String,
        /// Each platform's manifest, in the index's order.
        manifests: Vec<IndexEntry>,
        /// The index, as written.
        index: serde_json::Value,
    },
    /// The image as the push gate shows it (`--require-approval`, the debugger), before it is
    /// pushed.
    PushReview { review: Box<PushReview> },
    /// A debugger shell session started at a pause.
    ShellStarted {
        id: StepId,
        /// The command run in the build root (a shell, or one command).
        argv: Vec<String>,
        /// A terminal session (else one command whose output is `output` events).
        interactive: bool,
        /// Which side of the step the pause was on (absent in version 1 traces).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<When>,
    },
    /// The session ended; `changes` is what it changed in the build root.
    ShellFinished { id: StepId, exit_code: i32, changes: Vec<Change> },
    /// What happened to the session's changes: kept as a layer of the image (recorded in its
    /// history), or discarded with the build root left as it was.
    ShellResolved {
        id: StepId,
        kept: bool,
        /// The layer they became (`null`: discarded, or nothing had changed).
        layer: Option<LayerSummary>,
    },
    /// Pushing to one destination begins.
    PushStarted { destination: String },
    /// A blob is uploading (`sent` of `total` bytes; every 4 MiB, and once when `sent` reaches
    /// `total`, again if the upload starts over).
    PushProgress { destination: String, digest: Digest, sent: u64, total: u64 },
    /// A blob is at the destination.
    BlobPushed { destination: String, digest: Digest, action: BlobPushAction, size: u64 },
    /// The destination names the image.
    PushFinished {
        destination: String,
        /// The manifest digest.
        digest: Digest,
        /// From its `push_started` to the manifest's upload. Layers sent while they were
        /// written (to this destination ahead of the push) took their time before it: here
        /// they are only committed.
        duration_ms: u64,
        /// The destination already named this exact image (a rebuild in which nothing ran):
        /// nothing was sent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unchanged: bool,
    },
    /// A local output was written (`--tar-path`, `--oci-layout-path`).
    OutputWritten {
        /// `tarball` or `OCI layout`.
        kind: String,
        path: String,
    },
    /// The last event of a build that did not finish.
    BuildFailed {
        /// `Dockerfile:LINE: INSTRUCTION: reason`, or what else went wrong.
        error: String,
        step: Option<StepId>,
        /// The Dockerfile line it failed at.
        line: Option<usize>,
        /// The build was stopped (from the debugger, or a refused push), not broken.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        aborted: bool,
    },
    /// The build paused at a step boundary (a breakpoint fired, or the person is stepping).
    Paused { id: StepId, line: usize, when: When, reasons: Vec<PauseReason> },
    /// The pause at `id` ended; `paused_ms` is how long it lasted (shell sessions included).
    Resumed { id: StepId, action: ResumeAction, paused_ms: u64 },
    /// The debugger's breakpoints, every kind, as the person wrote them (`--break`'s syntax:
    /// `12`, `stage:build`, `size:10MB`): the list the build starts with, then the whole list
    /// again each time it changed (added or removed in the debugger), recorded at the next step
    /// boundary (where a breakpoint can fire) or at the build's end. Only in debugger sessions;
    /// a trace without it records only the breakpoints that fired (in `paused`).
    Breakpoints {
        /// Every breakpoint set, in the order set (empty: none).
        set: Vec<String>,
    },
    /// The answer at the push gate (after `push_review`). A refused push ends the build with an
    /// aborted `build_failed`.
    PushDecided {
        approved: bool,
        /// Why, when the person (or the gate) said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An event that could not be masked safely (a secret value occurred where masking breaks
    /// the event's shape, e.g. inside a digest): it was withheld from every sink, and this
    /// stands in for it.
    Redacted {
        /// The kind of the withheld event (`layer_written`, …).
        withheld: String,
        reason: String,
    },
    /// The last event of a build that finished.
    BuildFinished {
        /// Wall-clock time of the whole build, pauses included.
        duration_ms: u64,
        /// The image's manifest digest.
        digest: Option<Digest>,
        /// The destinations it was pushed to.
        pushed: Vec<String>,
    },
}
