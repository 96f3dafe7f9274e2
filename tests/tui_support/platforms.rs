//! A build for two platforms, as the engine reports it, made by hand from the event contract
//! (the engine does not emit it yet): targets `linux/amd64` and `linux/arm64`, a
//! `FROM --platform=$BUILDPLATFORM` stage that does not depend on the target (built once on
//! the build platform and shared by both targets), and one instance of the final stage per
//! target; then one `image_assembled` per platform, the `index_assembled`, the push review of
//! the index (index at top level, each manifest in `platforms`), the push and the end.
//!
//! Stage instances as the contract numbers them: 0 = `build` (shared, for linux/amd64, the
//! build platform), 1 = the final stage for linux/amd64, 2 = the final stage for linux/arm64.
//! The two final stages run at the same time, as the engine builds platforms concurrently.
#![allow(dead_code)]

use serde_json::json;
use trowel_events::{
    BaseSource, BlobPushAction, Digest, Envelope, Event, IndexEntry, LayerSummary, OutputStream, PlatformReview,
    PushReview, ReviewLayer, StagePlan, StepId, StepPlan, StepStatus,
};

pub const AMD64: &str = "linux/amd64";
pub const ARM64: &str = "linux/arm64";
pub const DESTINATION: &str = "127.0.0.1:5000/app:1";
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub const DOCKERFILE: &str = "\
FROM --platform=$BUILDPLATFORM busybox:1.35 AS build
RUN mkdir -p /out && echo 'generated once' > /out/assets.txt

FROM busybox:1.35
ARG TARGETARCH
COPY --from=build /out/assets.txt /srv/assets.txt
RUN uname -m > /srv/arch && echo \"built for $TARGETARCH\"
";

/// `sha256:` and the hex digit repeated.
pub fn digest(c: char) -> Digest {
    repeated(&c.to_string())
}

/// `sha256:` and the hex digits repeated.
fn repeated(hex: &str) -> Digest {
    format!("sha256:{}", hex.repeat(64 / hex.len())).parse().unwrap()
}

pub fn id(stage: usize, step: usize) -> StepId {
    StepId { stage, step }
}

fn layer(c: char, size: u64, step: Option<StepId>) -> LayerSummary {
    LayerSummary {
        digest: digest(c),
        diff_id: None,
        size,
        uncompressed_size: Some(size * 2),
        media_type: GZIP.into(),
        step,
        shell: None,
    }
}

/// busybox:1.35's one layer, per platform.
fn base_layer(platform: &str) -> LayerSummary {
    if platform == ARM64 { layer('2', 800_000, None) } else { layer('1', 900_000, None) }
}

struct Line {
    line: usize,
    keyword: &'static str,
    source: &'static str,
}

const BUILD: &[Line] = &[
    Line { line: 1, keyword: "FROM", source: "FROM --platform=$BUILDPLATFORM busybox:1.35 AS build" },
    Line { line: 2, keyword: "RUN", source: "RUN mkdir -p /out && echo 'generated once' > /out/assets.txt" },
];

const FINAL: &[Line] = &[
    Line { line: 4, keyword: "FROM", source: "FROM busybox:1.35" },
    Line { line: 5, keyword: "ARG", source: "ARG TARGETARCH" },
    Line { line: 6, keyword: "COPY", source: "COPY --from=build /out/assets.txt /srv/assets.txt" },
    Line { line: 7, keyword: "RUN", source: "RUN uname -m > /srv/arch && echo \"built for $TARGETARCH\"" },
];

fn stage_plan(index: usize, dockerfile_stage: usize, platform: &str, targets: &[&str]) -> StagePlan {
    let lines = if dockerfile_stage == 0 { BUILD } else { FINAL };
    StagePlan {
        index,
        name: (dockerfile_stage == 0).then(|| "build".to_string()),
        base: "busybox:1.35".into(),
        needed: true,
        steps: lines
            .iter()
            .enumerate()
            .map(|(step, l)| StepPlan {
                id: id(index, step),
                line: l.line,
                end_line: l.line,
                keyword: l.keyword.into(),
                source: l.source.into(),
                onbuild: false,
            })
            .collect(),
        dockerfile_stage: Some(dockerfile_stage),
        platform: Some(platform.into()),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

/// The events, numbered and timed in order.
struct Trace {
    events: Vec<Envelope>,
}

impl Trace {
    fn at(&mut self, ms: u64, event: Event) {
        self.events.push(Envelope { seq: self.events.len() as u64, ms, event });
    }

    fn stage(&mut self, ms: u64, stage: usize, name: Option<&str>, platform: &str) {
        self.at(ms, Event::StageStarted { stage, name: name.map(Into::into), base: "busybox:1.35".into() });
        self.at(
            ms + 5,
            Event::BaseResolved {
                stage,
                source: BaseSource::Registry {
                    reference: "127.0.0.1:5000/busybox:1.35".into(),
                    manifest_digest: if platform == ARM64 { digest('b') } else { digest('a') },
                    index_digest: Some(repeated("ab")),
                    cache_dir_miss: None,
                },
                config_digest: Some(if platform == ARM64 { digest('d') } else { digest('c') }),
                layers: vec![base_layer(platform)],
            },
        );
    }

    fn step(&mut self, ms: u64, at: StepId, l: &Line, expanded: &str) {
        self.at(
            ms,
            Event::StepStarted {
                id: at,
                line: l.line,
                end_line: l.line,
                keyword: l.keyword.into(),
                source: l.source.into(),
                expanded: expanded.into(),
                mounts: Vec::new(),
                attempt: None,
            },
        );
    }

    fn done(&mut self, ms: u64, at: StepId, duration_ms: u64, made: Option<LayerSummary>) {
        let digest = made.as_ref().map(|l| l.digest.clone());
        if let Some(layer) = made {
            self.at(ms, Event::LayerWritten { id: at, layer, entries: 3, duration_ms: 2 });
        }
        let status = if digest.is_some() { StepStatus::Built } else { StepStatus::Metadata };
        self.at(ms, Event::StepFinished { id: at, status, duration_ms, paused_ms: 0, layer: digest, exit_code: None });
    }
}

/// The layers each platform's image has: the base's, the COPY's, the RUN's.
pub fn image_layers(platform: &str) -> Vec<LayerSummary> {
    let (stage, copy, run) = if platform == ARM64 { (2, '0', '4') } else { (1, 'e', 'f') };
    vec![base_layer(platform), layer(copy, 200, Some(id(stage, 2))), layer(run, 180, Some(id(stage, 3)))]
}

pub fn manifest_digest(platform: &str) -> Digest {
    if platform == ARM64 { digest('8') } else { digest('7') }
}

fn config_digest(platform: &str) -> Digest {
    if platform == ARM64 { digest('6') } else { digest('5') }
}

fn image_size(platform: &str) -> u64 {
    image_layers(platform).iter().map(|l| l.size).sum::<u64>() + 1_000
}

/// The push review of the index: the registry has busybox's layers already (they are mounted
/// from its repository); the rest is uploaded.
pub fn review() -> PushReview {
    let platform = |p: &str| PlatformReview {
        platform: p.into(),
        manifest_digest: manifest_digest(p),
        config_digest: config_digest(p),
        media_type: MANIFEST_TYPE.into(),
        layers: image_layers(p)
            .into_iter()
            .map(|l| {
                let base = l.step.is_none();
                ReviewLayer {
                    digest: l.digest,
                    size: l.size,
                    uncompressed_size: l.uncompressed_size,
                    media_type: l.media_type,
                    step: l.step,
                    shell: None,
                    present: vec![Some(false)],
                    mount_from: vec![base.then(|| "busybox".to_string())],
                }
            })
            .collect(),
    };
    PushReview {
        manifest_digest: digest('9'),
        config_digest: None,
        media_type: INDEX_TYPE.into(),
        destinations: vec![DESTINATION.into()],
        layers: Vec::new(),
        platforms: vec![platform(AMD64), platform(ARM64)],
    }
}

/// Everything up to the push review (a debugger pausing there has seen these).
pub fn until_review() -> Vec<Envelope> {
    let all = events();
    let at = all.iter().position(|e| matches!(e.event, Event::PushReview { .. })).unwrap();
    all[..=at].to_vec()
}

/// The whole build, pushed.
pub fn events() -> Vec<Envelope> {
    let mut t = Trace { events: Vec::new() };
    t.at(
        0,
        Event::BuildStarted {
            version: "0.1.0".into(),
            dockerfile_path: "Dockerfile".into(),
            dockerfile_text: DOCKERFILE.into(),
            context: ".".into(),
            context_origin: None,
            target: None,
            destinations: vec![DESTINATION.into()],
            platform: AMD64.into(),
            platforms: vec![AMD64.into(), ARM64.into()],
            isolation: "chroot".into(),
            single_snapshot: false,
            layer_cache: Some(trowel_events::LayerCacheUse::Off),
            stages: vec![
                stage_plan(0, 0, AMD64, &[AMD64, ARM64]),
                stage_plan(1, 1, AMD64, &[AMD64]),
                stage_plan(2, 1, ARM64, &[ARM64]),
            ],
        },
    );
    // The shared stage, once, on the build platform.
    t.stage(10, 0, Some("build"), AMD64);
    t.step(20, id(0, 0), &BUILD[0], "FROM --platform=linux/amd64 busybox:1.35 AS build");
    t.done(25, id(0, 0), 5, None);
    t.step(30, id(0, 1), &BUILD[1], BUILD[1].source);
    t.done(230, id(0, 1), 200, Some(layer('3', 150, Some(id(0, 1)))));
    t.at(231, Event::StageFinished { stage: 0, duration_ms: 221, layers: 2 });
    // Both targets' final stages at once: arm64's RUN runs under emulation, so it takes longer.
    t.stage(240, 1, None, AMD64);
    t.stage(241, 2, None, ARM64);
    // (Made platform by platform; put in time order below, as the engine emits them.)
    for (stage, platform, start) in [(1, AMD64, 250), (2, ARM64, 252)] {
        t.step(start, id(stage, 0), &FINAL[0], FINAL[0].source);
        t.done(start + 2, id(stage, 0), 2, None);
        t.step(start + 4, id(stage, 1), &FINAL[1], FINAL[1].source);
        t.done(start + 5, id(stage, 1), 1, None);
        t.step(start + 6, id(stage, 2), &FINAL[2], FINAL[2].source);
        t.done(start + 20, id(stage, 2), 14, Some(image_layers(platform)[1].clone()));
        let arch = platform.rsplit('/').next().unwrap();
        t.step(start + 30, id(stage, 3), &FINAL[3], &format!("RUN uname -m > /srv/arch && echo \"built for {arch}\""));
    }
    t.at(300, Event::Output { id: id(1, 3), stream: OutputStream::Stdout, data: "built for amd64\n".into() });
    t.done(320, id(1, 3), 40, Some(image_layers(AMD64)[2].clone()));
    t.at(321, Event::StageFinished { stage: 1, duration_ms: 81, layers: 3 });
    t.at(900, Event::Output { id: id(2, 3), stream: OutputStream::Stdout, data: "built for arm64\n".into() });
    t.done(1_200, id(2, 3), 918, Some(image_layers(ARM64)[2].clone()));
    t.at(1_201, Event::StageFinished { stage: 2, duration_ms: 960, layers: 3 });
    for p in [AMD64, ARM64] {
        let arch = p.rsplit('/').next().unwrap();
        t.at(
            1_210,
            Event::ImageAssembled {
                manifest_digest: manifest_digest(p),
                config_digest: config_digest(p),
                media_type: MANIFEST_TYPE.into(),
                size: image_size(p),
                layers: image_layers(p),
                config: json!({"architecture": arch, "os": "linux"}),
                manifest: json!({"schemaVersion": 2, "mediaType": MANIFEST_TYPE}),
                platform: Some(p.into()),
            },
        );
    }
    let entry = |p: &str| IndexEntry { platform: p.into(), digest: manifest_digest(p), size: 650 };
    t.at(
        1_211,
        Event::IndexAssembled {
            digest: digest('9'),
            media_type: INDEX_TYPE.into(),
            manifests: vec![entry(AMD64), entry(ARM64)],
            index: json!({"schemaVersion": 2, "mediaType": INDEX_TYPE}),
        },
    );
    t.at(1_212, Event::PushReview { review: Box::new(review()) });
    t.at(1_300, Event::PushDecided { approved: true, reason: None });
    t.at(1_301, Event::PushStarted { destination: DESTINATION.into() });
    for p in [AMD64, ARM64] {
        for l in image_layers(p) {
            let action = if l.step.is_none() { BlobPushAction::Mounted } else { BlobPushAction::Uploaded };
            t.at(1_310, Event::BlobPushed { destination: DESTINATION.into(), digest: l.digest, action, size: l.size });
        }
    }
    t.at(
        1_400,
        Event::PushFinished { destination: DESTINATION.into(), digest: digest('9'), duration_ms: 99, unchanged: false },
    );
    t.at(
        1_401,
        Event::BuildFinished { duration_ms: 1_401, digest: Some(digest('9')), pushed: vec![DESTINATION.into()] },
    );
    t.events
}

/// The events written as a trace file (header first), for `trowel replay`.
pub fn trace_text() -> String {
    let mut text = String::from(r#"{"trowel_trace":3,"trowel_version":"0.1.0","started":"2026-12-01T00:00:00.000Z"}"#);
    text.push('\n');
    for e in events() {
        text.push_str(&serde_json::to_string(&e).unwrap());
        text.push('\n');
    }
    text
}
