//! Every flag kaniko v1.19.2 defines (`cmd/executor/cmd/root.go`, `cmd/warmer/cmd/root.go`),
//! and the two its last releases added (v1.21: `--registry-map`, `--push-ignore-immutable-tag-errors`),
//! given as a kaniko job gives it, must parse here: a flag trowel lacks fails these tests. The
//! tables are kaniko's, not trowel's: add a row when kaniko adds a flag. The defaults trowel
//! shares with kaniko are checked too; the ones it does not are README's table of differences.

use std::path::Path;

use clap::Parser;

use super::{Cli, Command, normalize_args};

/// kaniko executor's flags, each with a typical value (`None`: a boolean, given bare, `=true`,
/// `=false` and Go's `=1`/`=False`). Short forms are rows of their own.
const EXECUTOR: &[(&str, Option<&str>)] = &[
    ("--verbosity", Some("debug")),
    ("-v", Some("trace")),
    ("-v", Some("WARNING")),
    ("--log-format", Some("text")),
    ("--log-timestamp", None),
    ("--force", None),
    ("--dockerfile", Some("Dockerfile")),
    ("-f", Some("Dockerfile")),
    ("--context", Some("dir:///workspace")),
    ("-c", Some("/workspace")),
    ("--context-sub-path", Some("app")),
    ("--destination", Some("registry.example/team/app:1")),
    ("-d", Some("registry.example/team/app:2")),
    ("--snapshot-mode", Some("redo")),
    ("--custom-platform", Some("linux/arm64")),
    ("--build-arg", Some("VERSION=1.0")),
    ("--insecure", None),
    ("--skip-tls-verify", None),
    ("--insecure-pull", None),
    ("--skip-tls-verify-pull", None),
    ("--push-retry", Some("2")),
    ("--image-fs-extract-retry", Some("1")),
    ("--image-download-retry", Some("4")),
    ("--kaniko-dir", Some("/kaniko")),
    ("--tar-path", Some("/out/image.tar")),
    ("--single-snapshot", None),
    ("--reproducible", None),
    ("--target", Some("build")),
    ("--no-push", None),
    ("--no-push-cache", None),
    ("--cache-repo", Some("registry.example/team/app/cache")),
    ("--cache-dir", Some("/cache")),
    ("--digest-file", Some("/out/digest")),
    ("--image-name-with-digest-file", Some("/out/name")),
    ("--image-name-tag-with-digest-file", Some("/out/tag")),
    ("--oci-layout-path", Some("/out/layout")),
    ("--compression", Some("zstd")),
    ("--compression-level", Some("3")),
    ("--cache", None),
    ("--compressed-caching", None),
    ("--cleanup", None),
    ("--cache-ttl", Some("6h")),
    ("--insecure-registry", Some("plain.example:5000")),
    ("--skip-tls-verify-registry", Some("self-signed.example")),
    ("--registry-certificate", Some("reg.example=/certs/ca.pem")),
    ("--registry-client-cert", Some("reg.example=/certs/client.pem,/certs/client.key")),
    ("--registry-mirror", Some("mirror.gcr.io")),
    ("--skip-default-registry-fallback", None),
    ("--ignore-var-run", None),
    ("--label", Some("org.opencontainers.image.source=https://example/app")),
    ("--skip-unused-stages", None),
    ("--use-new-run", None),
    ("--git", Some("branch=main,single-branch=true")),
    ("--cache-copy-layers", None),
    ("--cache-run-layers", None),
    ("--ignore-path", Some("/var/mail")),
    ("--force-build-metadata", None),
    ("--skip-push-permission-check", None),
    // Added by kaniko 1.21 (its last images, v1.23/v1.24, have them).
    ("--registry-map", Some("index.docker.io=mirror.example/hub;ghcr.io=mirror.example/ghcr")),
    ("--push-ignore-immutable-tag-errors", None),
    // Deprecated in kaniko, still accepted there (with a warning).
    ("--snapshotMode", Some("time")),
    ("--customPlatform", Some("linux/amd64")),
    ("--tarPath", Some("/out/old.tar")),
    ("--whitelist-var-run", None),
    ("--bucket", Some("my-bucket")),
    ("-b", Some("my-bucket")),
];

/// kaniko warmer's flags (`/kaniko/warmer`, trowel's `warm`).
const WARMER: &[(&str, Option<&str>)] = &[
    ("--verbosity", Some("warn")),
    ("-v", Some("info")),
    ("--log-format", Some("color")),
    ("--log-timestamp", None),
    ("--image", Some("registry.example/base:1")),
    ("-i", Some("registry.example/base:2")),
    ("--cache-dir", Some("/cache")),
    ("-c", Some("/cache")),
    ("--force", None),
    ("-f", None),
    ("--cache-ttl", Some("24h")),
    ("--insecure-pull", None),
    ("--skip-tls-verify-pull", None),
    ("--insecure-registry", Some("plain.example:5000")),
    ("--skip-tls-verify-registry", Some("self-signed.example")),
    ("--registry-certificate", Some("reg.example=/certs/ca.pem")),
    ("--registry-client-cert", Some("reg.example=/certs/client.pem,/certs/client.key")),
    ("--registry-mirror", Some("mirror.gcr.io")),
    ("--registry-map", Some("index.docker.io=mirror.example/hub")),
    ("--skip-default-registry-fallback", None),
    ("--customPlatform", Some("linux/arm64")),
    ("--dockerfile", Some("Dockerfile")),
    ("-d", Some("Dockerfile")),
    ("--build-arg", Some("BASE=alpine")),
];

/// The ways a kaniko job writes `flag` (`=` joined and as two words for a value; bare, `=true`,
/// `=false`, and Go's other spellings for a boolean; a short boolean only bare).
fn forms(flag: &str, value: Option<&str>) -> Vec<Vec<String>> {
    match value {
        Some(v) if flag.starts_with("--") => vec![vec![format!("{flag}={v}")], vec![flag.into(), v.into()]],
        Some(v) => vec![vec![flag.into(), v.into()]],
        None if flag.starts_with("--") => {
            ["", "=true", "=false", "=1", "=False"].iter().map(|suffix| vec![format!("{flag}{suffix}")]).collect()
        }
        None => vec![vec![flag.into()]],
    }
}

fn try_parse(argv0: &str, args: &[String]) -> Result<Cli, clap::Error> {
    let mut all = vec![argv0.to_string()];
    all.extend(args.iter().cloned());
    Cli::try_parse_from(normalize_args(all))
}

#[test]
fn every_kaniko_executor_flag_parses_in_a_kaniko_invocation() {
    for (flag, value) in EXECUTOR {
        for form in forms(flag, *value) {
            // As a kaniko job runs it: no subcommand, `--no-push` so no destination is needed.
            let mut args = vec!["--no-push".to_string()];
            args.extend(form.iter().cloned());
            let parsed = try_parse("/kaniko/executor", &args);
            assert!(parsed.is_ok(), "kaniko's {form:?} is not accepted: {}", parsed.err().unwrap());
            let Command::Build(_) = parsed.unwrap().command else { panic!("{form:?} is not a build") };
        }
    }
    // All at once, as one long GitLab job line.
    let all: Vec<String> = EXECUTOR.iter().flat_map(|(f, v)| forms(f, *v).swap_remove(0)).collect();
    if let Err(e) = try_parse("/kaniko/executor", &all) {
        panic!("kaniko's flags together are not accepted: {e}");
    }
}

#[test]
fn every_kaniko_warmer_flag_parses() {
    for (flag, value) in WARMER {
        for form in forms(flag, *value) {
            for argv0 in ["/kaniko/warmer", "trowel"] {
                let mut args = if argv0 == "trowel" { vec!["warm".to_string()] } else { vec![] };
                args.extend(form.iter().cloned());
                let parsed = try_parse(argv0, &args);
                assert!(parsed.is_ok(), "kaniko warmer's {form:?} is not accepted: {}", parsed.err().unwrap());
                let Command::Warm(_) = parsed.unwrap().command else { panic!("{form:?} is not warm") };
            }
        }
    }
}

#[test]
fn defaults_shared_with_kaniko() {
    let Command::Build(b) = try_parse("/kaniko/executor", &["--no-push".into()]).unwrap().command else {
        panic!("not a build")
    };
    assert!(b.ignore_var_run && b.cache_run_layers && b.compressed_caching);
    assert!(!(b.cache || b.cache_copy_layers || b.reproducible || b.single_snapshot || b.insecure));
    assert!(!(b.skip_tls_verify || b.registry.skip_default_registry_fallback || b.registry.insecure_pull));
    assert!(!(b.cleanup || b.force || b.no_push_cache || b.force_build_metadata || b.skip_push_permission_check));
    assert_eq!((b.cache_dir.as_path(), b.cache_ttl.as_str()), (Path::new("/cache"), "336h"));
    assert_eq!((b.compression_level, b.image_fs_extract_retry), (-1, 0));
    assert_eq!(b.snapshot_mode, super::SnapshotModeArg::Full);
    assert_eq!(b.compression, super::CompressionArg::Gzip);
    assert_eq!(
        (b.log.verbosity, b.log.log_format.as_str(), b.log.log_timestamp),
        (super::Verbosity::Info, "color", false)
    );
    let Command::Warm(w) = try_parse("/kaniko/warmer", &["-i".into(), "x".into()]).unwrap().command else {
        panic!("not warm")
    };
    assert_eq!(
        (w.cache_dir.as_path(), w.cache_ttl, w.force),
        (Path::new("/cache"), std::time::Duration::from_secs(336 * 3600), false)
    );
}

#[test]
fn go_boolean_spellings_mean_what_they_meant_to_kaniko() {
    let cache = |v: &str| match try_parse("trowel", &["build".into(), format!("--cache={v}")]).map(|c| c.command) {
        Ok(Command::Build(b)) => Ok(b.cache),
        Ok(_) => panic!("not a build"),
        Err(e) => Err(e.to_string()),
    };
    for v in ["1", "t", "T", "true", "TRUE", "True"] {
        assert_eq!(cache(v), Ok(true), "{v}");
    }
    for v in ["0", "f", "F", "false", "FALSE", "False"] {
        assert_eq!(cache(v), Ok(false), "{v}");
    }
    let e = cache("yes").unwrap_err();
    assert!(e.contains("\"yes\" is not a boolean"), "{e}");
}
