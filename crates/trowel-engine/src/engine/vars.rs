//! The variables a step sees: the image's `ENV` first, then the stage's `ARG`s in scope
//! (Docker: an `ENV` always wins over an `ARG` of the same name).

use crate::dockerfile::{ArgScope, Vars};
use crate::image::config::ImageConfig;

pub struct StepVars<'a> {
    pub config: &'a ImageConfig,
    pub args: &'a ArgScope,
}

impl Vars for StepVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.config.env_var(name).or_else(|| self.args.value(name).map(str::to_string))
    }
}

/// The environment of a RUN: image ENV, then ARGs in scope that ENV does not set (they reach the
/// process but are never written to the image), plus `PATH` and `HOME` defaults.
pub fn run_env(config: &ImageConfig, args: &ArgScope, home: &str) -> Vec<(String, String)> {
    let mut env = config.env();
    for (k, v) in args.run_env() {
        if !env.iter().any(|(ek, _)| ek == &k) {
            env.push((k, v));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), crate::image::config::DEFAULT_PATH.into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.into()));
    }
    env
}
