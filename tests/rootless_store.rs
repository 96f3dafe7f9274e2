//! The unpacked-layer store in rootless isolation (issue 19): as an ordinary user
//! (`common::rootless`), a build root is an overlay of entries made and mounted inside the
//! user's namespace, kept in a store of its own per mapping under the cache dir.
//!
//! What is proved: a base with deletions (a whiteout, a replaced directory), a hard link and a
//! directory only a subordinate id may enter builds rootless from the store — the second time
//! with nothing unpacked — to the image root builds from its own store (same digest with
//! `--reproducible`, read back with skopeo and umoci); a write through one name of a hard link
//! reaches the other; `trowel cache check` finds the cache dir intact and `trowel cache prune`
//! removes what only root of the namespace may; two builds at once on one cache dir make each
//! entry once; the single-id mapping gets a store of its own; a store the overlay cannot be
//! mounted from is said once and the roots are unpacked, and not in a build that unpacks none.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::rootless::{WITH_RANGE, WITHOUT_RANGE, Workspace, ok, user};
use common::*;

/// A base with what a store must get right, built and pushed by root (chroot isolation): its
/// top layer deletes `/gone`, replaces the directory `/d` (so it holds whiteouts), and leaves
/// `/f1`–`/f2` one file with two names and `/d/new` open to its owner (1234) only.
fn base_with_deletions() -> String {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\n\
             RUN mkdir -p /d/old && echo x > /d/old/x && echo gone > /gone && echo one > /f1 && ln /f1 /f2\n\
             RUN rm /gone && rm -rf /d && mkdir -p /d/new && echo y > /d/new/y && chown -R 1234:1234 /d/new \
             && chmod 700 /d/new\n",
            env().busybox()
        ),
    )
    .unwrap();
    let base = format!("{}/{}:base", env().registry, unique_repo("rlstore-base"));
    assert_ok(&run(trowel()
        .args(["build", "--reproducible", "--isolation=chroot", "--destination", &base, "--context"])
        .arg(ctx.path())));
    // The deletions are in the image as whiteouts, as an independent reader sees it.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    copy_to_layout(&base, &layout, "b");
    let manifest = skopeo_manifest(&base);
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let blob = layout.join("blobs/sha256").join(top.trim_start_matches("sha256:"));
    let listing = stdout(&run(Command::new("tar").arg("-tf").arg(&blob)));
    assert!(listing.lines().any(|l| l.trim_start_matches("./") == ".wh.gone"), "{listing}");
    assert!(listing.lines().any(|l| l.trim_start_matches("./").starts_with("d/.wh.")), "{listing}");
    base
}

/// What the user's build does on that base: every deletion must show, and the hard link.
fn dockerfile_on(base: &str) -> String {
    format!(
        "FROM {base}\n\
         RUN test ! -e /gone && test ! -e /d/old && ls /d > /ls-d && cat /d/new/y > /seen-y \
         && echo more >> /f2 && cat /f1 > /seen-f1\n"
    )
}

fn digest_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// The one rootless store under `cache` (`unpacked-userns/<kind>-<hex>`).
fn the_store(cache: &Path, kind: &str) -> PathBuf {
    let stores = names(&cache.join("unpacked-userns"));
    assert_eq!(stores.len(), 1, "{stores:?}");
    let name = stores.into_iter().next().unwrap();
    assert!(name.starts_with(&format!("{kind}-")), "{name}");
    cache.join("unpacked-userns").join(name)
}

/// `trowel build` as the user with the workspace's cache dir; returns (stderr, digest).
fn build_as_user(ws: &Workspace, cache: &Path, dest: &str, digest_file: &str) -> (String, String) {
    let o = ok(ws
        .trowel()
        .args(["build", "--reproducible", "--destination", dest, "--cache-dir"])
        .arg(cache)
        .arg("--context")
        .arg(ws.path("ctx"))
        .arg("--digest-file")
        .arg(ws.path(digest_file)));
    (stderr(&o), digest_of(&ws.path(digest_file)))
}

#[test]
fn a_rootless_root_is_mounted_from_its_store_and_is_the_image_root_builds() {
    let base = base_with_deletions();
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &dockerfile_on(&base));
    let cache = ws.path("cache");
    let repo = unique_repo("rlstore");
    let dest = format!("{}/{repo}:user", env().registry);

    let (log1, digest1) = build_as_user(&ws, &cache, &dest, "digest1");
    assert!(log1.contains("RUN isolation: rootless"), "{log1}");
    assert!(log1.contains("Mounted 3 layer(s) from the unpacked-layer store (0 there already, 3 unpacked"), "{log1}");
    let (log2, digest2) = build_as_user(&ws, &cache, &dest, "digest2");
    assert!(
        log2.contains("Mounted 3 layer(s) from the unpacked-layer store (3 there already, none unpacked)"),
        "{log2}"
    );
    assert_eq!(digest1, digest2);

    // Its own store, apart from root's: entries, their lists of hard links, nothing left over.
    let store = the_store(&cache, "range");
    assert_eq!(names(&store.join("sha256")).len(), 3);
    assert_eq!(names(&store.join("links")), names(&store.join("sha256")));
    assert!(names(&store.join("tmp")).is_empty());
    assert!(names(&cache.join("unpacked/sha256")).is_empty(), "root's store is not used");
    // On disk the directory belongs to a subordinate id: the user cannot even look into it.
    let new_dir = names(&store.join("sha256"))
        .iter()
        .map(|e| store.join("sha256").join(e).join("d/new"))
        .find(|p| p.exists())
        .expect("an entry with /d/new");
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&new_dir).unwrap());
    let start: u32 = std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}:", u.name)))
        .and_then(|rest| rest.split(':').next()?.parse().ok())
        .expect("the user's range");
    // 0 is the user, 1.. the range: 1234 is the range's 1234th id.
    assert_eq!(uid, start + 1233, "owned by the subordinate id of 1234");

    // Root, chroot isolation, its own store: the same image.
    let root_cache = tempfile::tempdir().unwrap();
    let root_digest = tempfile::NamedTempFile::new().unwrap();
    let o = run(trowel()
        .args(["build", "--reproducible", "--isolation=chroot", "--no-push", "--context"])
        .arg(ws.path("ctx"))
        .arg("--cache-dir")
        .arg(root_cache.path())
        .arg("--digest-file")
        .arg(root_digest.path()));
    assert_ok(&o);
    assert!(stderr(&o).contains("from the unpacked-layer store"), "{}", stderr(&o));
    assert_eq!(digest1, digest_of(root_digest.path()), "rootless and root builds differ");

    // The image as skopeo and umoci see it.
    assert_eq!(skopeo_inspect(&dest)["Digest"].as_str().unwrap(), digest1);
    let unpacked = pull_and_unpack(&dest);
    let rootfs = unpacked.rootfs();
    assert_eq!(Tree::content(&rootfs, "/ls-d"), "new\n", "the replaced directory shows only its new child");
    assert_eq!(Tree::content(&rootfs, "/seen-y"), "y\n");
    assert_eq!(Tree::content(&rootfs, "/seen-f1"), "one\nmore\n", "a write through /f2 reached /f1");
    let tree = unpacked.tree();
    assert!(!tree.has("/gone") && !tree.has("/d/old"));
    assert_eq!(tree.get("/f1").ino, tree.get("/f2").ino, "still one file");
    assert_eq!((tree.get("/d/new").uid, tree.get("/d/new").mode & 0o777), (1234, 0o700));

    // The cache dir is intact, and a prune removes what only root of the namespace may.
    let o = ok(ws.trowel().args(["cache", "check", "--cache-dir"]).arg(&cache));
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!said.contains("corrupt"), "{said}");
    ok(ws.trowel().args(["cache", "prune", "--max-size", "0", "--cache-dir"]).arg(&cache));
    assert!(names(&store.join("sha256")).is_empty(), "pruned: {:?}", names(&store.join("sha256")));
    assert!(names(&store.join("links")).is_empty());
    assert!(names(&cache.join(".trash")).is_empty(), "nothing left in the trash: {:?}", names(&cache.join(".trash")));
}

/// Two builds at once on one cache dir and an empty store: both succeed with one image, and
/// each entry is made once (the making lock), nothing half-made left behind.
#[test]
fn two_rootless_builds_at_once_share_one_store() {
    let base = base_with_deletions();
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &dockerfile_on(&base));
    let cache = ws.path("cache");
    let repo = unique_repo("rlstore-twice");
    let spawn = |i: usize| {
        ws.trowel()
            .args(["build", "--reproducible", "--no-push", "--cache-dir"])
            .arg(&cache)
            .arg("--context")
            .arg(ws.path("ctx"))
            .arg("--digest-file")
            .arg(ws.path(&format!("digest{i}")))
            .args(["--destination", &format!("{}/{repo}:{i}", env().registry)])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(1), spawn(2));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_ok(&a);
    assert_ok(&b);
    assert_eq!(digest_of(&ws.path("digest1")), digest_of(&ws.path("digest2")));
    for o in [&a, &b] {
        assert!(stderr(o).contains("from the unpacked-layer store"), "{}", stderr(o));
    }
    let store = the_store(&cache, "range");
    assert_eq!(names(&store.join("sha256")).len(), 3);
    assert!(names(&store.join("tmp")).is_empty(), "{:?}", names(&store.join("tmp")));
    let o = ok(ws.trowel().args(["cache", "check", "--cache-dir"]).arg(&cache));
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!said.contains("corrupt") && !said.contains("leftover"), "{said}");
}

/// No range: the single-id mapping's store is its own (its files are all the user's), and
/// serves the second build.
#[test]
fn the_single_id_mapping_has_a_store_of_its_own() {
    let u = user(WITHOUT_RANGE, false);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo single > /single\n", env().busybox()));
    let cache = ws.path("cache");
    let dest = format!("{}/{}:1", env().registry, unique_repo("rlstore-single"));
    let (log1, d1) = build_as_user(&ws, &cache, &dest, "digest1");
    assert_eq!(log1.matches("rootless isolation with a single id").count(), 1, "{log1}");
    let (log2, d2) = build_as_user(&ws, &cache, &dest, "digest2");
    assert!(log2.contains("from the unpacked-layer store (1 there already, none unpacked)"), "{log2}");
    assert_eq!(d1, d2);
    let store = the_store(&cache, "single");
    assert_eq!(names(&store.join("sha256")).len(), 1);
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/single"), "single\n");
}

/// A store no overlay can be mounted from (its path holds a `:`, which overlayfs's options
/// cannot carry): said once, and the root is unpacked as without a cache dir.
#[test]
fn a_store_that_cannot_be_mounted_is_said_once_and_roots_are_unpacked() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write(
        "ctx/Dockerfile",
        &format!("FROM {b} AS one\nRUN echo one > /one\nFROM {b}\nCOPY --from=one /one /one\n", b = env().busybox()),
    );
    let cache = ws.path("ca:che");
    std::fs::create_dir(&cache).unwrap();
    ws.give();
    let dest = format!("{}/{}:1", env().registry, unique_repo("rlstore-refused"));
    let (log, _) = build_as_user(&ws, &cache, &dest, "digest");
    assert_eq!(log.matches("every root is unpacked instead").count(), 1, "{log}");
    assert!(log.contains("overlayfs cannot be mounted from"), "{log}");
    assert!(!log.contains("Mounted "), "{log}");
    assert!(log.contains("unpacked-layer store not used"), "{log}");
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/one"), "one\n");
}

/// The same store in a build that unpacks no root: a debug session of a rebuild the cache
/// serves, whose viewer looks the base's paths up in the store to tell added from modified, is
/// not told that every root is unpacked.
#[test]
fn a_store_that_cannot_be_mounted_is_not_said_in_a_build_without_roots() {
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {}\nRUN echo r > /r && rm /etc/group\n", env().busybox()));
    let cache = ws.path("ca:che");
    std::fs::create_dir(&cache).unwrap();
    ws.give();
    let dest = format!("{}/{}:1", env().registry, unique_repo("rlstore-noroot"));
    let flags = |trace: &str| {
        format!(
            "--cache=true --cache-dir {} --unpacked-store-min-size 0 --destination {dest} --trace {} --context {}",
            cache.display(),
            ws.path(trace).display(),
            ws.path("ctx").display()
        )
    };
    let o = ok(ws.trowel().arg("build").args(flags("built.jsonl").split(' ')));
    assert_eq!(stderr(&o).matches("every root is unpacked instead").count(), 1, "{}", stderr(&o));
    // The session as the user, in a terminal of its own.
    let cmd = format!(
        "/usr/bin/setpriv --reuid {} --regid {} --init-groups -- /usr/bin/env -i HOME={} TERM=screen-256color \
         PATH=/usr/bin:/bin:/usr/sbin:/sbin TMPDIR={} {} debug --no-break-on-failure {}",
        u.uid,
        u.gid,
        u.home.display(),
        ws.path("tmp").display(),
        env!("CARGO_BIN_EXE_trowel"),
        flags("session.jsonl")
    );
    let t = common::tmux::Tmux::start(&cmd, 110, 32);
    t.wait_for("Push now?");
    t.confirm_push_and_quit();
    let session = std::fs::read_to_string(ws.path("session.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = session.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |kind: &str| events.iter().filter(|e| e["event"] == kind).collect::<Vec<_>>();
    assert!(of("cache_lookup").iter().all(|e| e["result"]["kind"] == "hit"), "{session}");
    // Shown as when it ran: /etc/group deleted, so the base was looked up.
    let snapshot = of("snapshot").pop().unwrap();
    assert_eq!(snapshot["classified"], true, "{snapshot}");
    let warnings: Vec<&str> = of("warning").iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(warnings.iter().all(|w| !w.contains("every root is unpacked instead")), "{warnings:?}");
}

/// A rootless build killed (SIGKILL, the whole process group: the relay and trowel in the
/// namespace) while it makes an entry of a Debian base leaves no half-made entry: the next
/// build removes what it left, makes the entry and mounts from it, and the cache dir checks
/// clean.
#[test]
fn a_rootless_build_killed_while_making_an_entry_leaves_none_half_made() {
    use std::os::unix::process::CommandExt as _;
    let debian = debian_image("minbase");
    let u = user(WITH_RANGE, true);
    let ws = Workspace::new(&u);
    ws.write("ctx/Dockerfile", &format!("FROM {debian}\nRUN echo after > /after\n"));
    let cache = ws.path("cache");
    let dest = format!("{}/{}:1", env().registry, unique_repo("rlstore-killed"));
    let mut child = ws
        .trowel()
        .args(["build", "--no-push", "--cache-dir"])
        .arg(&cache)
        .arg("--context")
        .arg(ws.path("ctx"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    // Killed once an entry is being made in the store's tmp/ (its first files written).
    let making = |c: &Path| {
        names(&c.join("unpacked-userns")).iter().any(|s| {
            let tmp = c.join("unpacked-userns").join(s).join("tmp");
            names(&tmp).iter().any(|t| names(&tmp.join(t).join("upper")).len() > 3)
        })
    };
    let t0 = std::time::Instant::now();
    while !making(&cache) {
        assert!(child.try_wait().unwrap().is_none(), "the build ended before it was seen making an entry");
        assert!(t0.elapsed() < std::time::Duration::from_secs(300));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status:?}");
    let store = the_store(&cache, "range");
    assert!(names(&store.join("sha256")).is_empty(), "no entry appeared: {:?}", names(&store.join("sha256")));

    let (log, _) = build_as_user(&ws, &cache, &dest, "digest");
    assert!(log.contains("Mounted 1 layer(s) from the unpacked-layer store (0 there already, 1 unpacked"), "{log}");
    assert_eq!(names(&store.join("sha256")).len(), 1);
    assert!(names(&store.join("tmp")).is_empty(), "the killed build's tmp/ is gone: {:?}", names(&store.join("tmp")));
    let o = ok(ws.trowel().args(["cache", "check", "--cache-dir"]).arg(&cache));
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!said.contains("corrupt"), "{said}");
    assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/after"), "after\n");
}
