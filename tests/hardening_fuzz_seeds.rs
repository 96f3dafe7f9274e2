//! The fuzz targets' checks (`fuzz/checks/*.rs`) over every committed seed in `fuzz/seeds/`:
//! real Dockerfiles, ignore files, layers, manifests and configs, the hostile shapes, and the
//! inputs of past findings. It keeps what fuzzing established true in the normal test suite
//! without the fuzzing toolchain (`fuzz/run.sh` does the fuzzing itself).

#[path = "../fuzz/checks/config.rs"]
mod config;
#[path = "../fuzz/checks/dockerfile.rs"]
mod dockerfile;
#[path = "../fuzz/checks/dockerignore.rs"]
mod dockerignore;
#[path = "../fuzz/checks/manifest.rs"]
mod manifest;
#[path = "../fuzz/checks/platform.rs"]
mod platform;
#[path = "../fuzz/checks/run_mount.rs"]
mod run_mount;
#[path = "../fuzz/checks/unpack.rs"]
mod unpack;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{target} check failed on seed {}", p.display());
        n += 1;
    }
    assert!(n >= 4, "only {n} seeds for {target}");
}

#[test]
fn dockerfile_seeds() {
    replay("dockerfile", dockerfile::check);
}

#[test]
fn dockerignore_seeds() {
    replay("dockerignore", dockerignore::check);
}

#[test]
fn unpack_seeds() {
    replay("unpack", unpack::check);
}

#[test]
fn manifest_seeds() {
    replay("manifest", manifest::check);
}

#[test]
fn config_seeds() {
    replay("config", config::check);
}

#[test]
fn run_mount_seeds() {
    replay("run_mount", run_mount::check);
}

#[test]
fn platform_seeds() {
    replay("platform", platform::check);
}
