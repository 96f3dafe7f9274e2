//! Shared by the debugger's tests (`debugger.rs`: the controller; `debugger_views.rs`: what
//! the views are shown): a build context and options for a Dockerfile, pushed to a new
//! repository of the test registry.
#![allow(dead_code)]

use std::path::Path;

use trowel_engine::engine::BuildOptions;

use crate::common::*;

/// Options that build `ctx`'s Dockerfile and push to `dest`, with the test binary as the RUN helper.
pub fn options(ctx: &Path, dest: &str) -> BuildOptions {
    let mut o = BuildOptions::new(ctx.join("Dockerfile"), ctx);
    o.output.destinations = vec![dest.to_string()];
    o.run.helper_exe = env!("CARGO_BIN_EXE_trowel").into();
    o.registry.user_agent = "trowel-tests".into();
    o
}

/// A context of `dockerfile` and a file `f.txt`.
pub fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(d.path().join("f.txt"), "f\n").unwrap();
    d
}

/// A new repository of the test registry, tag 1.
pub fn dest(name: &str) -> String {
    format!("{}/{}:1", env().registry, unique_repo(name))
}
