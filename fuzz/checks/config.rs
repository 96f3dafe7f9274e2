//! Image configs from a registry (`ImageConfig::from_bytes`) through everything the engine
//! reads and writes on a base image's config: accessors (env, user, shell, ONBUILD, diff_ids,
//! history…) and the mutations a build makes (ENV, labels, history, diff_ids, platform,
//! `--reproducible` stripping). Any JSON must be handled without a panic, and a config the
//! engine wrote must parse again with the diff_id it appended.
//!
//! Shared by the fuzz target `fuzz/fuzz_targets/config.rs` and by `tests/hardening_fuzz_seeds.rs`,
//! which runs it over the committed seeds in the normal test suite.

use trowel_engine::digest::Digest;
use trowel_engine::image::config::{History, ImageConfig};
use trowel_engine::image::manifest::Platform;

/// Checks one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Ok(mut cfg) = ImageConfig::from_bytes(data) else { return };
    let _ = (cfg.platform(), cfg.env(), cfg.env_var("PATH"), cfg.cmd(), cfg.entrypoint(), cfg.shell());
    let _ = (cfg.working_dir(), cfg.user(), cfg.stop_signal(), cfg.labels(), cfg.exposed_ports(), cfg.volumes());
    let _ = (cfg.healthcheck(), cfg.onbuild(), cfg.history(), cfg.created());
    let ids = cfg.diff_ids();

    cfg.set_onbuild(Vec::new());
    if cfg.env_var("PATH").is_none() {
        cfg.set_env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    }
    cfg.set_env("A", "1=2");
    cfg.set_label("org.example", "x");
    cfg.add_exposed_port("80/tcp");
    cfg.add_volume("/data");
    cfg.set_working_dir("/w");
    let layer = Digest::of(data);
    cfg.push_diff_id(&layer);
    cfg.push_history(History { created_by: Some("RUN x".into()), ..History::default() });
    cfg.set_created("1970-01-01T00:00:00Z");
    cfg.set_platform(&Platform::host());
    cfg.strip_host_fields();
    let _ = cfg.newest_history_time();
    let last = cfg.history_len() - 1;
    cfg.set_history_created(last, "1970-01-01T00:00:00Z");
    assert_eq!(cfg.history().last().and_then(|h| h.created.clone()).as_deref(), Some("1970-01-01T00:00:00Z"));

    let back = ImageConfig::from_bytes(&cfg.to_bytes()).expect("a config the engine wrote parses again");
    let new_ids = back.diff_ids();
    assert_eq!(new_ids.last(), Some(&layer));
    assert!(new_ids.len() <= ids.len() + 1);
    assert_eq!(back.env_var("A").as_deref(), Some("1=2"));
}
