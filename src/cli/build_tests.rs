//! Unit tests of `build.rs`: kaniko's flags as `trowel build` reads them, and what the flags
//! alone refuse before a build starts.

use super::super::{Command, parse};
use super::*;

#[test]
fn platforms_are_listed_or_repeated_and_built_once() {
    let names = |args: &[&str]| {
        let mut all = vec!["trowel", "build", "--no-push", "--context", "/ws"];
        all.extend(args);
        match parse(&all).command {
            Command::Build(b) => target_platforms(b.custom_platform.as_deref(), &b.platforms)
                .map(|ps| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
            _ => panic!("not a build"),
        }
    };
    assert_eq!(names(&["--platform", "linux/amd64,linux/arm64"]).unwrap(), ["linux/amd64", "linux/arm64"]);
    assert_eq!(names(&["--platform", "linux/amd64", "--platform", "arm64"]).unwrap(), ["linux/amd64", "linux/arm64"]);
    assert_eq!(names(&["--custom-platform", "linux/arm/v7"]).unwrap(), ["linux/arm/v7"]);
    // buildx dedupes its list: a platform given again, in any spelling, is built once.
    assert_eq!(
        names(&["--platform", "linux/amd64,linux/x86_64,arm64,linux/amd64"]).unwrap(),
        ["linux/amd64", "linux/arm64"]
    );
    assert!(names(&["--custom-platform", "linux/arm64", "--platform", "linux/amd64"]).is_err());
    assert!(names(&["--platform", "linux/amd46"]).unwrap_err().0.contains("did you mean amd64"));
}

#[test]
fn kaniko_bool_flags_take_values() {
    let cli = parse(&["trowel", "build", "--reproducible=false", "--single-snapshot", "--ignore-var-run=false"]);
    let Command::Build(b) = cli.command else { panic!("expected build") };
    assert!(!b.reproducible);
    assert!(b.single_snapshot);
    assert!(!b.ignore_var_run);
}

#[test]
fn kaniko_dir_is_the_trowel_dir() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| std::ffi::OsString::from(v))
    };
    let both = env(&[("KANIKO_DIR", "/k"), ("TROWEL_DIR", "/t")]);
    let Command::Build(b) = parse(&["trowel", "build", "--kaniko-dir", "/flag"]).command else { panic!() };
    assert_eq!(trowel_dir(b.trowel_dir.as_deref(), &both), PathBuf::from("/flag"));
    let Command::Build(b) = parse(&["trowel", "build", "--trowel-dir=/flag2"]).command else { panic!() };
    assert_eq!(trowel_dir(b.trowel_dir.as_deref(), &both), PathBuf::from("/flag2"));
    assert_eq!(trowel_dir(None, &both), PathBuf::from("/k"));
    assert_eq!(trowel_dir(None, &env(&[("KANIKO_DIR", ""), ("TROWEL_DIR", "/t")])), PathBuf::from("/t"));
    assert_eq!(trowel_dir(None, &env(&[])), PathBuf::from("/trowel"));
}

#[test]
fn layer_size_limits() {
    let cli = parse(&["trowel", "build", "--no-push"]);
    let Command::Build(b) = cli.command else { panic!("expected build") };
    assert_eq!(b.max_file_size, trowel_engine::engine::options::DEFAULT_MAX_FILE_SIZE);
    assert_eq!(b.max_layer_size, trowel_engine::engine::options::DEFAULT_MAX_LAYER_SIZE);
    assert_eq!(b.max_layer_entries, trowel_engine::engine::options::DEFAULT_MAX_LAYER_ENTRIES);
    let cli = parse(&["trowel", "build", "--max-file-size=1MiB", "--max-layer-size", "0", "--max-layer-entries=0"]);
    let Command::Build(b) = cli.command else { panic!("expected build") };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut b = *b;
    b.context = Some(dir.path().display().to_string());
    b.no_push = true;
    let o = b.to_options().unwrap();
    assert_eq!((o.layers.max_file_size, o.layers.max_layer_size), (Some(1 << 20), None));
    assert_eq!(o.layers.max_layer_entries, None);
}

/// What kaniko refuses before it builds: `--cache` with `--no-push` and no `--cache-repo`
/// (trowel derived the repository from the destination and wrote the cache there, though
/// told not to push), and an image-name file with no destination to name.
#[test]
fn no_push_combinations_kaniko_refuses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let ctx = dir.path().display().to_string();
    let err = |args: &[&str]| {
        let mut all = vec!["trowel", "build", "--context", &ctx];
        all.extend_from_slice(args);
        let Command::Build(b) = parse(&all).command else { panic!("expected build") };
        b.to_options().err().map(|e| e.0)
    };
    let e = err(&["--no-push", "--cache=true", "--destination", "reg.example/app:1"]).unwrap();
    assert!(e.contains("--cache with --no-push needs --cache-repo"), "{e}");
    assert_eq!(err(&["--no-push", "--cache=true", "--cache-repo", "reg.example/cache"]), None);
    let e = err(&["--no-push", "--image-name-with-digest-file", "/tmp/x"]).unwrap();
    assert!(e.contains("--image-name-with-digest-file needs a --destination"), "{e}");
    let e = err(&["--no-push", "--image-name-tag-with-digest-file", "/tmp/x"]).unwrap();
    assert!(e.contains("--image-name-tag-with-digest-file needs a --destination"), "{e}");
    assert_eq!(err(&["--no-push", "--digest-file", "/tmp/x"]), None);
}
