//! Cache misses explained truly with kaniko's flags (`--cache=true --cache-repo …`, no
//! `--cache-copy-layers`) in fresh pods (no cache dir, no work dir survives; only the cache
//! repository carries state), against the real registry.
//!
//! What is proved: a step after a line inserted above it names the inserted step as its cause
//! (not `no cache entry for this step yet`, which reads as a first build); a COPY that no build
//! like this one keeps an entry of (a builder stage's, never pushed; any with `--no-push`; a
//! deferred one) says which builds miss there and what would make one hit (a pushing build's
//! layer reference record), not `… yet`, which promised a hit such a build gets only after
//! another kind of build, nor "every time", which a pushing build in between makes untrue; and
//! it never names what its place held two builds ago as what it holds.

mod common;

use common::traced::Project;
use common::*;

/// The auditors' Dockerfile: a `deps` stage others build on, a `build` stage nothing builds on,
/// and a final stage that copies from both. `R` is the test registry's busybox.
fn dockerfile(inserted: bool) -> String {
    let extra = if inserted { "RUN echo extra > /extra\n" } else { "" };
    format!(
        "FROM {b} AS deps\n\
         WORKDIR /app\n\
         {extra}\
         COPY package.json ./\n\
         RUN mkdir node_modules && head -c 300000 /dev/urandom > node_modules/big.bin && cp package.json node_modules/\n\
         FROM deps AS build\n\
         COPY . .\n\
         RUN cat src/* > dist.js\n\
         FROM {b}\n\
         WORKDIR /srv\n\
         COPY --from=deps /app/node_modules ./node_modules\n\
         COPY --from=build /app/dist.js ./\n\
         COPY static/ ./static/\n\
         CMD [\"sh\"]\n",
        b = env().busybox()
    )
}

fn project(name: &str) -> Project {
    let p = Project::new(name, &dockerfile(false));
    p.write("package.json", "{}\n");
    p.write("src/a.js", "a();\n");
    p.write("static/index.html", "<p>hi</p>\n");
    p
}

/// What a builder stage's COPY says in a fresh pod: which builds miss, and what would make one
/// hit; no "yet", and no "every time" either (a build that pushes its stage's image would).
const NEVER_KEPT: &str = "miss: COPY and ADD layers are not written to the cache repository (--cache-copy-layers=false), \
     and this build keeps none of this step's (no usable --cache-dir, and its stage is in no pushed image): \
     a build like this one misses here unless one that pushed an image holding this layer left a layer reference \
     record of it";

/// What a deferred COPY says: no entry of it is kept either.
const NOT_RUN: &str = "miss: COPY and ADD layers are not written to the cache repository (--cache-copy-layers=false), \
     and this one is not run (nothing needs its layer), so this build keeps no entry of it: a build that does not \
     run it misses here unless one that ran it kept an entry (in its --cache-dir, or a layer reference record when \
     it pushed an image holding this layer)";

#[test]
fn a_line_inserted_above_a_step_is_named_as_its_cause() {
    let p = project("explain-insert");
    let cold = p.build(&[]);
    // A first build: nothing to name but that.
    assert_eq!(cold.at(4), "miss: no cache entry for this step yet");
    std::fs::write(p.dir.path().join("Dockerfile"), dockerfile(true)).unwrap();
    let inserted = p.build(&[]);
    assert_eq!(inserted.at(2), "hit");
    assert_eq!(inserted.at(3), "miss: no cache entry for this step yet");
    assert_eq!(inserted.at(5), "miss: parent step missed (line 3: no cache entry for this step yet)");
}

#[test]
fn a_copy_no_build_keeps_says_so_and_names_no_stale_place() {
    let p = project("explain-unkept");
    let cold = p.build(&[]);
    // `deps` is in no pushed image, no cache dir: never kept (it runs: its RUN misses too).
    assert_eq!(cold.at(3), NEVER_KEPT);
    // The final stage's COPY is pushed: a reference record keeps it, so "yet" is true there.
    assert_eq!(cold.at(12), "miss: no cache entry for this step yet");
    let again = p.build(&[]);
    assert_eq!(again.at(12), "hit");
    // Neither `deps` (no image is built on it) nor `build` is an image, and their RUNs hit:
    // their COPYs are not run.
    assert_eq!((again.status(3), again.status(6)), ("deferred".into(), "deferred".into()));
    assert_eq!((again.at(3), again.at(6)), (NOT_RUN.into(), NOT_RUN.into()));

    // After a line inserted above it, the COPY's place held the RUN below it; an unchanged
    // build after that must not say the place still holds that RUN (the COPY never moves the
    // place's pointer).
    std::fs::write(p.dir.path().join("Dockerfile"), dockerfile(true)).unwrap();
    p.build(&[]);
    let after = p.build(&[]);
    assert_eq!(after.at(4), NOT_RUN);
    assert!(!after.log.contains("its place in the stage held"), "{}", after.log);
}

/// With `--no-push` a final stage's COPY is kept by no build like this one; a pushing build in
/// between writes the layer reference record the next `--no-push` build hits: "every time" was
/// not true, and is not said.
#[test]
fn with_no_push_a_final_stage_copy_is_kept_only_by_a_pushing_build() {
    let p = project("explain-nopush");
    let o = p.build(&["--no-push"]);
    assert_eq!(
        o.at(12),
        "miss: COPY and ADD layers are not written to the cache repository (--cache-copy-layers=false), \
         and this build keeps none of this step's (no usable --cache-dir, and --no-push): \
         a build like this one misses here unless one that pushed an image holding this layer left a layer reference \
         record of it"
    );
    // A RUN is kept in the cache repository: "yet" is true of it.
    assert_eq!(o.at(4), "miss: no cache entry for this step yet");
    p.build(&[]);
    assert_eq!(p.build(&["--no-push"]).at(12), "hit");
}
