//! The Dockerfile corpus: every case under `testdata/corpus/<name>/` is built with trowel against
//! the local registry, then checked with independent tools only: `skopeo inspect` for the
//! manifest and config, `umoci unpack` for the file tree, `crun` to run it.
//!
//! A case is a build context holding a `Dockerfile` and an `expect.json`:
//! ```json
//! { "build_args": {"K": "v"}, "flags": ["--reproducible"], "target": "stage",
//!   "files": {"/app/x": {"type": "f", "mode": "0644", "uid": 0, "gid": 0, "content": "hi\n"}},
//!   "absent": ["/tmp/gone"],
//!   "config": {"User": "app", "Cmd": ["sh"]},          // subset of the config's "config" object
//!   "image": {"architecture": "amd64"},                 // subset of the whole config
//!   "layers": 3, "history": 9, "manifest_media_type": "...", "layer_media_types": ["..."],
//!   "run": {"args": ["cat", "/x"], "stdout": "hi\n", "exit_code": 0},
//!   "fail": {"exit_code": 3, "message": "Dockerfile:4: RUN exit 3: exit code 3"},
//!   "log_contains": ["..."], "log_lacks": ["..."],
//!   "debian": "python",                                 // FROM ${DEBIAN}: scripts/make-debian-image.sh
//!   "secrets": {"id": "value"},                         // --secret id=…: absent from the log and image
//!   "absent_glob": ["/var/cache/apt/archives/*.deb"] }
//! ```
//! Every build gets `--build-arg REGISTRY=<plain registry>` (corpus Dockerfiles start with
//! `ARG REGISTRY` and `FROM ${REGISTRY}/busybox:1.35`) and `HTTP=<url of a local HTTP server
//! serving testdata/http>`. Cases with real package managers (`"debian"`) build FROM a Debian
//! base made once per machine; their cache mounts persist in a directory kept on the machine
//! too (`--mount-cache-dir`), so packages are downloaded once, as on a CI runner with a cache
//! volume.
//!
//! A second pass (`rootless::<case>`) builds the cases again as the ordinary user `trowel-rl`
//! (rootless isolation), checks each the same way, and compares it with root's build of the
//! same case:
//! - on busybox, both `--reproducible`: the same image, digest for digest. Root's build of a
//!   busybox case is made `--reproducible` by the root pass too and shared (`root_build`), so the
//!   rootless pass adds one build per case, not two. No expectation depends on time, which is
//!   all `--reproducible` changes; the default, dated images are built by the rest of the suite;
//! - on a Debian base: apt and dpkg write logs and timestamps inside files, pip `.pyc` headers
//!   with the time of install, which differ between any two builds, root's or not, so digests
//!   cannot agree (one rule for every Debian case). Compared instead, besides every check of
//!   expect.json (contents, absent paths, crun running the image): both images' file trees as
//!   umoci unpacks them — every path, its type, mode, owner and link target. Root's build is the
//!   root pass's own, made once per test process (`root_build`), so the pass adds one build per
//!   case, not two. The user's cache mounts persist on the machine as root's do, in a directory
//!   of the user's own (`mount_cache_dir`): packages are downloaded once per machine for it too.
//!
//! All six Debian cases run rootless (since 2026-12-03; until then `cross-compile-go`,
//! `mount-cache-cargo` and `mount-cache-npm` were left out for their cost, measured in
//! bench/results/issue19-rootless-corpus/README.md; what they cost now is in
//! bench/results/issue19-defer/README.md). What each adds rootless:
//! - `mount-cache-apt`: apt drops to its `_apt` sandbox user, which needs the range, and its cache
//!   mounts (`sharing=locked`) hold files of `_apt` and of the namespace's root;
//! - `mount-cache-go`: the context is bound into the RUN with its files owned by an id the
//!   namespace does not map, and Go's caches on cache mounts are written by its root;
//! - `mount-cache-pip`: a download from a real index into a cache mount;
//! - `cross-compile-go`: mount-cache-go's RUN with GOOS/GOARCH set, in a stage for another
//!   platform that a later stage copies from;
//! - `mount-cache-cargo`: COPY and two cache mounts written by root, and cargo compiling;
//! - `mount-cache-npm`: npm as root with its cache mounted and one context file bound, on the
//!   largest base to pull and check.
//!
//! A Debian case builds in the scratch tmpfs `scripts/test.sh` mounts (`scratch_dir`), root's
//! work dir and the user's workspace alike: on this project's virtual disk, deleting one Debian
//! root took longer than building it. Busybox cases build in the temp dir, on the disk.
//!
//! A case may still be marked `root_only` (the macro keeps the form); only a Debian case may.

mod common;
mod corpus_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::*;
use corpus_support::expect::{Expect, FileExpect};
use corpus_support::{mount_cache_dir, same_tree};
use serde_json::Value;

fn case_dir(name: &str) -> PathBuf {
    repo_root().join("testdata/corpus").join(name)
}

/// A tiny HTTP server over `testdata/http` for ADD URL cases (one thread, GET only).
fn http_server() -> &'static str {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::OnceLock;
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let file = repo_root().join("testdata/http").join(&path);
                let resp = match std::fs::read(&file) {
                    Ok(body) if !path.contains("..") => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend(body);
                        r
                    }
                    _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = conn.write_all(&resp);
            }
        });
        format!("http://127.0.0.1:{port}")
    })
}

/// Replaces `{registry}`, `{http}`, `{auth_registry}` and `{auth_basic}` (the auth registry's
/// `user:password` in base64, as a Basic header holds it) placeholders.
fn fill(s: &str) -> String {
    let e = env();
    let basic = base64_encode(&format!("{}:{}", e.auth_user, e.auth_password));
    s.replace("{registry}", &e.registry)
        .replace("{http}", http_server())
        .replace("{auth_registry}", &e.auth_registry)
        .replace("{auth_basic_len}", &basic.len().to_string())
        .replace("{auth_basic}", &basic)
}

#[track_caller]
fn assert_subset(path: &str, want: &Value, got: &Value) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g.get(k).unwrap_or(&Value::Null);
                assert_subset(&format!("{path}.{k}"), wv, gv);
            }
        }
        (Value::String(w), _) => assert_eq!(&Value::String(fill(w)), got, "{path}"),
        _ => assert_eq!(want, got, "{path}"),
    }
}

fn check_file(rootfs: &Path, tree: &Tree, path: &str, want: &FileExpect) {
    let got = tree.get(path);
    if let Some(k) = &want.kind {
        assert_eq!(got.kind.to_string(), *k, "{path}: type");
    }
    if let Some(m) = &want.mode {
        assert_eq!(format!("{:04o}", got.mode), *m, "{path}: mode");
    }
    if let Some(u) = want.uid {
        assert_eq!(got.uid, u, "{path}: uid");
    }
    if let Some(g) = want.gid {
        assert_eq!(got.gid, g, "{path}: gid");
    }
    if let Some(c) = &want.content {
        assert_eq!(Tree::content(rootfs, path), fill(c), "{path}: content");
    }
    if let Some(s) = &want.sha256 {
        assert_eq!(got.sha256.as_deref(), Some(s.as_str()), "{path}: sha256");
    }
    if let Some(s) = want.size {
        assert_eq!(got.size, s, "{path}: size");
    }
    if let Some(l) = &want.link {
        assert_eq!(got.link.as_deref(), Some(l.as_str()), "{path}: link target");
    }
    if let Some(other) = &want.same_inode_as {
        assert_eq!(got.ino, tree.get(other).ino, "{path} should be a hardlink of {other}");
    }
}

/// Who builds a case: root (chroot isolation on this machine), or the ordinary user
/// `trowel-rl` (rootless isolation; `common::rootless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Root,
    User,
}

fn run_case(name: &str) {
    root_build(name);
}

fn is_debian(name: &str) -> bool {
    let expect: Expect = serde_json::from_slice(&std::fs::read(case_dir(name).join("expect.json")).unwrap()).unwrap();
    expect.debian.is_some()
}

/// Root's build of a case, made once per test process: by the root pass or the rootless pass,
/// whichever asks first (the other waits for it), so a whole run builds it once. `--reproducible`
/// on busybox, where the rootless pass compares digests; dated on a Debian base, where it
/// compares file trees (the file's doc says why).
fn root_build(name: &str) -> Arc<Option<Built>> {
    type Cell = Arc<OnceLock<Arc<Option<Built>>>>;
    static BUILDS: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    let cell = BUILDS.get_or_init(Default::default).lock().unwrap().entry(name.to_string()).or_default().clone();
    // A build that panicked leaves the cell empty: the next test to ask builds (and fails) again.
    cell.get_or_init(|| Arc::new(run_case_as(name, Who::Root, !is_debian(name)))).clone()
}

/// The rootless pass: the case built by the ordinary user, checked exactly as root's build is,
/// and the same image as root's: digest for digest (both `--reproducible`), or, on a Debian
/// base, file tree for file tree (the file's doc says why and what is compared).
fn run_rootless_case(name: &str) {
    let expect: Expect = serde_json::from_slice(&std::fs::read(case_dir(name).join("expect.json")).unwrap()).unwrap();
    if let Some((_, why)) = ROOTLESS_CANNOT.iter().find(|(n, _)| *n == name) {
        // What rootless isolation documents it cannot do fails, with the kernel's words.
        let ws = common::rootless::Workspace::new(&common::rootless::user(common::rootless::WITH_RANGE, true));
        let dir = case_dir(name);
        let o = run(ws
            .trowel()
            .args(["build", "--no-push", "--context"])
            .arg(&dir)
            .arg("--build-arg")
            .arg(format!("REGISTRY={}", env().registry)));
        assert!(!o.status.success(), "{name}: {why}");
        assert!(stderr(&o).contains("Operation not permitted"), "{name}: {why}:\n{}", stderr(&o));
        return;
    }
    if expect.debian.is_some() {
        let user = run_case_as(name, Who::User, false);
        match (&*root_build(name), &user) {
            (Some(root), Some(user)) => same_tree(name, &root.tree, &user.tree),
            (root, user) => assert_eq!(root.is_some(), user.is_some(), "{name}: one build failed, not the other"),
        }
        return;
    }
    let user = run_case_as(name, Who::User, true);
    let root = root_build(name);
    assert_eq!(
        user.map(|b| b.digest),
        root.as_ref().as_ref().map(|b| b.digest.clone()),
        "{name}: the rootless build differs from root's"
    );
}

/// What a successful build of a case left to compare.
struct Built {
    digest: String,
    tree: Tree,
}

/// Cases the rootless pass expects to fail, and why (README, "Rootless").
const ROOTLESS_CANNOT: &[(&str, &str)] =
    &[("special-files", "RUN mknod: root of a user namespace may not make device nodes")];

/// Builds and checks a case; the digest and file tree of a build that succeeded.
fn run_case_as(name: &str, who: Who, reproducible: bool) -> Option<Built> {
    let dir = case_dir(name);
    let expect: Expect = serde_json::from_slice(&std::fs::read(dir.join("expect.json")).unwrap())
        .unwrap_or_else(|e| panic!("{name}/expect.json: {e}"));
    let env = env();
    let dest = format!("{}/corpus/{}:latest", env.registry, unique_repo(name));
    // A Debian case's root and work dir go to the scratch tmpfs (`scratch_dir`): deleting a
    // Debian root on the virtual disk took longer than the build.
    let parent = if expect.debian.is_some() { scratch_dir() } else { PathBuf::from("/var/tmp") };
    let ws = (who == Who::User).then(|| {
        common::rootless::Workspace::new_in(&common::rootless::user(common::rootless::WITH_RANGE, true), &parent)
    });
    let mut cmd = match &ws {
        Some(ws) => ws.trowel(),
        None => trowel(),
    };
    if ws.is_none() && expect.debian.is_some() {
        cmd.env("TMPDIR", &parent);
    }
    // The user's environment is clean, but package downloads go where root's go.
    if ws.is_some() && expect.debian.is_some() {
        for k in ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
    }
    // Written by whoever builds (the user, when rootless): in the workspace then.
    let scratch = tempfile::tempdir().unwrap();
    let digest_file = ws.as_ref().map(|w| w.path("digest")).unwrap_or_else(|| scratch.path().join("digest"));
    cmd.arg("build")
        .arg("--context")
        .arg(&dir)
        .arg("--dockerfile")
        .arg(dir.join("Dockerfile"))
        .arg("--destination")
        .arg(&dest)
        .arg("--build-arg")
        .arg(format!("REGISTRY={}", env.registry))
        .arg("--build-arg")
        .arg(format!("HTTP={}", http_server()));
    for (k, v) in &expect.build_args {
        cmd.arg("--build-arg").arg(format!("{k}={}", fill(v)));
    }
    if let Some(t) = &expect.target {
        cmd.arg("--target").arg(t);
    }
    for f in &expect.flags {
        cmd.arg(fill(f));
    }
    cmd.arg("--digest-file").arg(&digest_file);
    if reproducible && !expect.flags.iter().any(|f| f == "--reproducible") {
        cmd.arg("--reproducible");
    }
    if let Some(flavour) = &expect.debian {
        cmd.arg("--build-arg").arg(format!("DEBIAN={}", debian_image(flavour)));
        cmd.arg("--mount-cache-dir").arg(mount_cache_dir(ws.as_ref()));
    }
    let secrets: Vec<String> = expect.secrets.values().map(|v| fill(v)).collect();
    for (id, value) in &expect.secrets {
        let var = format!("TROWEL_CORPUS_SECRET_{}", id.to_uppercase());
        cmd.env(&var, fill(value)).arg("--secret").arg(format!("id={id},env={var}"));
    }
    let out = run(&mut cmd);
    let log = format!("{}{}", stdout(&out), stderr(&out));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "{name}: a secret is in the log:\n{log}");
    }
    for s in &expect.log_contains {
        assert!(log.contains(&fill(s)), "{name}: log lacks {s:?}:\n{log}");
    }
    for s in &expect.log_lacks {
        assert!(!log.contains(&fill(s)), "{name}: log contains {s:?}:\n{log}");
    }
    if let Some(fail) = &expect.fail {
        assert!(!out.status.success(), "{name}: build should fail:\n{log}");
        if let Some(c) = fail.exit_code {
            assert_eq!(out.status.code(), Some(c), "{name}: exit code\n{log}");
        }
        assert!(stderr(&out).contains(&fill(&fail.message)), "{name}: error should contain {:?}:\n{log}", fail.message);
        let probe = run(std::process::Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{dest}"),
        ]));
        assert!(!probe.status.success(), "{name}: a failed build must push nothing");
        return None;
    }
    assert_ok(&out);

    let manifest = skopeo_manifest(&dest);
    let config = skopeo_config(&dest);
    if let Some(mt) = &expect.manifest_media_type {
        assert_eq!(manifest["mediaType"].as_str(), Some(mt.as_str()), "{name}: manifest media type");
    }
    let layers = manifest["layers"].as_array().unwrap();
    if let Some(n) = expect.layers {
        assert_eq!(layers.len(), n, "{name}: layer count; manifest: {manifest:#}");
    }
    if let Some(types) = &expect.layer_media_types {
        let got: Vec<&str> = layers.iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
        assert_eq!(got, *types, "{name}: layer media types");
    }
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        layers.len(),
        "{name}: diff_ids and layers must agree"
    );
    if let Some(n) = expect.history {
        assert_eq!(config["history"].as_array().map(Vec::len), Some(n), "{name}: history: {:#}", config["history"]);
    }
    let non_empty = config["history"].as_array().unwrap().iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(non_empty, layers.len(), "{name}: history entries with layers must match layers");
    if let Some(c) = &expect.config {
        assert_subset("config", c, &config["config"]);
    }
    if let Some(i) = &expect.image {
        assert_subset("image", i, &config);
    }

    let unpacked = pull_and_unpack(&dest);
    let tree = unpacked.tree();
    for (path, want) in &expect.files {
        check_file(&unpacked.rootfs(), &tree, path, want);
    }
    for path in &expect.absent {
        assert!(!tree.has(path), "{name}: {path} should not be in the image");
    }
    for pattern in &expect.absent_glob {
        let glob = globset::Glob::new(pattern).unwrap().compile_matcher();
        let hits: Vec<&String> = tree.0.keys().filter(|p| glob.is_match(p.as_str())).collect();
        assert!(hits.is_empty(), "{name}: {pattern} matches {hits:?}");
    }
    for secret in &secrets {
        let config_text = config.to_string();
        assert!(!config_text.contains(secret.as_str()), "{name}: a secret is in the image config (history)");
        for (path, f) in &tree.0 {
            if f.kind == 'f' && f.size < (1 << 20) {
                let content = std::fs::read(unpacked.rootfs().join(path.trim_start_matches('/'))).unwrap();
                let found = content.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "{name}: a secret is in the image at {path}");
            }
        }
    }
    if let Some(r) = &expect.run {
        let args: Option<Vec<String>> = r.args.as_ref().map(|a| a.iter().map(|s| fill(s)).collect());
        let argv: Option<Vec<&str>> = args.as_ref().map(|a| a.iter().map(String::as_str).collect());
        let (code, out, err) = unpacked.crun(argv.as_deref());
        assert_eq!(code, r.exit_code, "{name}: crun exit code; stderr: {err}");
        assert_eq!(out, fill(&r.stdout), "{name}: crun stdout; stderr: {err}");
    }
    Some(Built { digest: std::fs::read_to_string(&digest_file).unwrap().trim().to_string(), tree })
}

/// A case's rootless test, or none for a case the rootless pass leaves out (`root_only`: why, in
/// the file's doc).
macro_rules! rootless_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            super::run_rootless_case(&stringify!($name).replace('_', "-"));
        }
    };
    ($name:ident, root_only) => {};
}

macro_rules! corpus {
    ($($name:ident $(($only:ident))?),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(&stringify!($name).replace('_', "-"));
            }
        )*

        /// The rootless pass (issue 19): each case again as an ordinary user, compared with
        /// root's build.
        mod rootless {
            $(rootless_test!($name $(, $only)?);)*
        }

        /// Every directory under testdata/corpus has a test above, and only Debian cases are
        /// left out of the rootless pass.
        #[test]
        fn every_case_is_listed() {
            let listed: Vec<String> = vec![$(stringify!($name).replace('_', "-")),*];
            for e in std::fs::read_dir(repo_root().join("testdata/corpus")).unwrap() {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(listed.contains(&n), "testdata/corpus/{n} has no test in tests/corpus.rs");
            }
            let root_only: Vec<String> = vec![$($(stringify!($name).replace('_', "-") + stringify!($only),)?)*];
            for n in root_only {
                let n = n.trim_end_matches("root_only");
                assert!(is_debian(n), "{n}: only Debian cases may be left out of the rootless pass");
            }
        }
    };
}

corpus! {
    add_archive_dirs,
    add_archive_names,
    add_archive_over_symlink,
    add_local_archives,
    add_url,
    add_unpack,
    arg_from,
    arg_inherit,
    arg_scope,
    cmd_entrypoint,
    config_buildkit,
    copy_basic,
    copy_chown_chmod,
    copy_exclude,
    copy_existing_dirs,
    copy_from_image,
    copy_from_owner,
    copy_heredoc,
    copy_onto_symlink,
    copy_link,
    copy_multiple_sources_no_slash,
    copy_outside_context,
    copy_parents,
    copy_symlinks,
    copy_wildcards,
    copy_wildcards_empty,
    cross_compile_go,
    custom_platform,
    docker_base,
    dockerignore,
    duplicate_stage_names,
    empty_chown_user,
    entrypoint_keeps_cmd,
    entrypoint_resets_cmd,
    env_forms,
    escape_directive,
    expose_volume_stopsignal,
    fail_add_bzip2_bomb,
    fail_add_checksum,
    fail_bad_user,
    fail_copy_missing,
    fail_run_exit,
    fail_unknown_instruction,
    from_platform,
    hardlinks,
    healthcheck,
    healthcheck_none,
    index_default_platform,
    json_trailing_text,
    labels,
    long_names,
    mount_cache_apt,
    mount_cache_cargo,
    mount_cache_go,
    mount_cache_npm,
    mount_cache_pip,
    mount_secret_token,
    multistage,
    multistage_chain,
    onbuild,
    opaque_dir,
    predefined_platform_args,
    proxy_args,
    run_basic,
    run_heredoc,
    scratch,
    shell_instruction,
    single_snapshot,
    snapshot_mode_full,
    snapshot_mode_redo,
    snapshot_mode_time,
    special_files,
    target,
    user_and_groups,
    user_numeric,
    user_scratch,
    volume_keeps_writes,
    whiteouts,
    workdir,
    workdir_relative_copy,
    zstd,
}
