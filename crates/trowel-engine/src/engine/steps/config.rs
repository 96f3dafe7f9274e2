//! Steps that change only the image config: ENV, ARG, LABEL, EXPOSE, VOLUME, USER, CMD,
//! ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER. Each gets a history entry
//! marked `empty_layer` but ONBUILD, as in BuildKit (the stage writes it: an ARG's names the
//! values the ARGs took).

use serde_json::json;

use crate::dockerfile::{CommandForm, Expanded, Instruction};
use crate::engine::error::BuildError;
use crate::engine::stage::StageConfig;
use crate::engine::steps::StepAt;
use crate::image::config::ImageConfig;

/// Applies a config-only instruction to the stage (the runner records its history entry).
pub(crate) fn apply(
    stage: &mut StageConfig,
    at: &StepAt<'_>,
    escape: char,
    expanded: Expanded,
) -> Result<(), BuildError> {
    apply_to(stage, at.instruction, escape, expanded).map_err(|e| match e {
        ConfigError::Dockerfile(e) => BuildError::Dockerfile(e),
        ConfigError::Invalid(m) => at.invalid(m),
    })
}

/// Why a config instruction could not be applied.
pub(crate) enum ConfigError {
    Dockerfile(crate::dockerfile::DockerfileError),
    Invalid(String),
}

/// What a config instruction does to a stage's config and ARG scope. Pure (no I/O, no events),
/// so the cache-key planner replays exactly what execution will do.
pub(crate) fn apply_to(
    stage: &mut StageConfig,
    instruction: &Instruction,
    escape: char,
    expanded: Expanded,
) -> Result<(), ConfigError> {
    let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
    let StageConfig { image: config, args, cmd_set } = stage;
    match expanded {
        Expanded::Arg(_) => {
            // ARG defaults are expanded only when no --build-arg replaces them (BuildKit), so
            // the scope applies the raw instruction rather than the pre-expanded words.
            let before = args.clone();
            let vars = crate::engine::vars::StepVars { config, args: &before };
            args.apply(instruction, &vars, escape).map_err(ConfigError::Dockerfile)?;
        }
        Expanded::Env(pairs) => {
            for (k, v) in pairs {
                config.set_env(&k, &v);
            }
        }
        Expanded::Label(pairs) => {
            for (k, v) in pairs {
                config.set_label(&k, &v);
            }
        }
        Expanded::Expose(ports) => {
            for p in ports {
                config.add_exposed_port(&p);
            }
        }
        Expanded::Volume(vols) => {
            for v in vols {
                if v.is_empty() {
                    return invalid("VOLUME path must not be empty");
                }
                config.add_volume(&v);
            }
        }
        // A USER that expands to nothing is no error: BuildKit sets the user to "", the
        // default (root), for the steps after it and in the image.
        Expanded::User(u) if u.is_empty() => config.clear_user(),
        Expanded::User(u) => config.set_user(&u),
        // `CMD []` and `ENTRYPOINT []` clear the field: BuildKit's config leaves an empty one
        // out (`omitempty`). Every CMD sets `ArgsEscaped`, as BuildKit's `dispatchCmd` does on
        // every platform (a Docker-image field kept for Windows, ignored elsewhere).
        Expanded::Cmd(c) => {
            let argv = command_argv(config, c);
            config.set_cmd((!argv.is_empty()).then_some(argv));
            config.set_args_escaped(Some(true));
            *cmd_set = true;
        }
        Expanded::Entrypoint(c) => {
            let argv = command_argv(config, c);
            config.set_entrypoint((!argv.is_empty()).then_some(argv));
            // Docker: a new ENTRYPOINT resets a CMD inherited from the base, but keeps one set
            // earlier in this stage.
            if !*cmd_set {
                config.set_cmd(None);
            }
        }
        Expanded::Shell(sh) => {
            if sh.is_empty() {
                return invalid("SHELL requires at least one argument");
            }
            config.set_shell(sh);
        }
        Expanded::Stopsignal(sig) => {
            validate_signal(&sig).map_err(ConfigError::Invalid)?;
            config.set_stop_signal(&sig);
        }
        Expanded::Healthcheck(hc) => match hc {
            None => config.set_healthcheck(json!({"Test": ["NONE"]})),
            Some(h) => {
                let mut v = json!({"Test": h.test});
                let o = v.as_object_mut().unwrap();
                for (k, val) in [
                    ("Interval", h.interval_ns),
                    ("Timeout", h.timeout_ns),
                    ("StartPeriod", h.start_period_ns),
                    ("StartInterval", h.start_interval_ns),
                    ("Retries", h.retries),
                ] {
                    if let Some(x) = val {
                        o.insert(k.into(), json!(x));
                    }
                }
                config.set_healthcheck(v);
            }
        },
        Expanded::Onbuild(trigger) => {
            let mut t = config.onbuild();
            t.push(trigger);
            config.set_onbuild(t);
        }
        Expanded::Maintainer(m) => config.set_author(&m),
        Expanded::Workdir(dir) => {
            let base = config.working_dir().unwrap_or("/").to_string();
            config.set_working_dir(&crate::engine::steps::join_clean(&base, &dir));
        }
        Expanded::From { .. } | Expanded::Run { .. } | Expanded::Copy(_) | Expanded::Add(_) => {}
    }
    Ok(())
}

/// Exec form as is; shell form wrapped in the stage's SHELL.
pub fn command_argv(config: &ImageConfig, c: CommandForm) -> Vec<String> {
    match c {
        CommandForm::Exec(v) => v,
        CommandForm::Shell(s) => {
            let mut argv = config.shell().unwrap_or_else(default_shell);
            argv.push(s);
            argv
        }
    }
}

pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// The value is checked when the Dockerfile is expanded ([`check_signal`]); a config replayed
/// for the cache-key plan goes through the same rule.
fn validate_signal(sig: &str) -> Result<(), String> {
    crate::dockerfile::expand::check_signal(sig)
}

#[cfg(test)]
mod tests {
    use super::validate_signal;

    #[test]
    fn signals() {
        // BuildKit's `signal.ParseSignal`: any integer but 0, or a key of its signal map.
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "sigusr1", "65", "-1", "RTMAX-14", "SIGRTMAX"] {
            assert!(validate_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "RTMIN+99", "RTMIN+03", "RTMIN+16", "RTMAX-15"] {
            assert!(validate_signal(bad).is_err(), "{bad}");
        }
    }
}
