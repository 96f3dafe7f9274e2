//! `RUN --mount` in a pod: every kind put in place and taken away again with container
//! isolation, read-only mounts and tmpfs sizes held.

use super::*;

#[test]
fn run_mounts_are_put_in_place_and_taken_away_in_a_pod() {
    let e = env();
    let image = trowel_image();
    let cache = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("Dockerfile"), POD_MOUNTS_DF).unwrap();
    std::fs::create_dir(workspace.path().join("src")).unwrap();
    std::fs::write(workspace.path().join("src/hello"), "hello-from-context\n").unwrap();
    std::fs::write(workspace.path().join("src/ignored.env"), "X=1\n").unwrap();
    std::fs::write(workspace.path().join(".dockerignore"), "src/*.env\n").unwrap();
    let mounts: Vec<(&Path, &str)> = vec![(cache.path(), "/cache"), (workspace.path(), "/workspace")];
    let build = |n: &str| {
        let dest = format!("{}/{}:1", e.registry, unique_repo("pod-mounts"));
        let args: Vec<String> = [
            "/trowel/busybox/env",
            "TOK=pod-secret-token-value",
            "/trowel/trowel",
            "build",
            "--context=/workspace",
            "--dockerfile=/workspace/Dockerfile",
            &format!("--destination={dest}"),
            &format!("--build-arg=REGISTRY={}", e.registry),
            &format!("--build-arg=BUILD={n}"),
            "--secret=id=tok,env=TOK",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (code, out, err, _) = pod_run(&image, args, &mounts);
        let log = format!("{out}{err}");
        assert_eq!(code, 0, "build {n} in the pod failed:\n{log}");
        assert!(log.contains("RUN isolation: container") && !log.contains("pod-secret-token-value"), "{log}");
        dest
    };
    let (first, second) = (build("one"), build("two"));
    let base = pull_and_unpack(&e.busybox()).tree();
    for (dest, cached) in [(&first, "nothing-cached"), (&second, "one")] {
        let u = pull_and_unpack(dest);
        let (code, out, err) = u.crun(None);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("{cached}\nfrom-build\nhello-from-context\nhello\n0\n400\n22\n"));
        let tree = u.tree();
        for gone in ["/root/.cache", "/src", "/tmp/scratch", "/run", "/home/app/app"] {
            assert!(!tree.has(gone), "{gone} was only mounted: {:?}", tree.paths_under(gone));
        }
        // What a target hid, and the directories around the targets, are exactly as they were.
        for kept in ["/home/app", "/root", "/tmp", "/"] {
            let (a, b) = (tree.get(kept), base.get(kept));
            assert_eq!((a.mode, a.uid, a.mtime_ns), (b.mode, b.uid, b.mtime_ns), "{kept}");
        }
    }
    assert_eq!(std::fs::read_to_string(workspace.path().join("src/hello")).unwrap(), "hello-from-context\n");
    let seen: Vec<String> = walkdir::WalkDir::new(cache.path().join("mounts"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "seen")
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(seen, ["one\ntwo\n"], "the cache lives on the /cache volume");

    // A private network cannot be had without CAP_SYS_ADMIN: said before anything is pulled.
    std::fs::write(
        workspace.path().join("Dockerfile"),
        format!("FROM {}/never-pulled:1\nRUN --network=none true\n", e.registry),
    )
    .unwrap();
    let args = ["/trowel/trowel", "build", "--no-push", "--context=/workspace"].map(String::from).to_vec();
    let (code, out, err, _) = pod_run(&image, args, &mounts);
    assert_ne!(code, 0);
    assert!(
        err.contains("RUN --network=none cannot be honoured in container isolation: making a network namespace needs CAP_SYS_ADMIN"),
        "{out}{err}"
    );
}

/// What only a mount could refuse, judged once the command is done (a pod has no mount
/// syscall): a write to a `ro` cache or to a read-only bind, a tmpfs over its `size`. Reading
/// them, and filling a tmpfs exactly, is fine.
#[test]
fn read_only_mounts_and_tmpfs_sizes_hold_in_a_pod() {
    let e = env();
    let image = trowel_image();
    let cache = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    std::fs::create_dir(workspace.path().join("src")).unwrap();
    std::fs::write(workspace.path().join("src/hello"), "hello\n").unwrap();
    let mounts: Vec<(&Path, &str)> = vec![(cache.path(), "/cache"), (workspace.path(), "/workspace")];
    let build = |steps: &str| -> (i32, String) {
        let df = format!("FROM {}/busybox:1.35\n{steps}", e.registry);
        std::fs::write(workspace.path().join("Dockerfile"), df).unwrap();
        let args = ["/trowel/trowel", "build", "--no-push", "--context=/workspace"].map(String::from).to_vec();
        let (code, out, err, _) = pod_run(&image, args, &mounts);
        (code, format!("{out}{err}"))
    };
    let cache_files = || -> Vec<String> {
        walkdir::WalkDir::new(cache.path().join("mounts"))
            .into_iter()
            .filter_map(|e| e.ok())
            // What the caches hold (instance `0`, `1`…), not the store's own `id` and lock files.
            .filter(|e| e.file_type().is_file() && e.depth() > 2)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };

    let (code, log) = build(
        "RUN --mount=type=cache,id=c,target=/c echo kept > /c/kept\n\
         RUN --mount=type=cache,id=c,target=/c,ro --mount=type=bind,source=src,target=/src cat /c/kept /src/hello\n\
         RUN --mount=type=tmpfs,target=/t,size=65536 head -c 65536 /dev/zero > /t/fits\n",
    );
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("RUN isolation: container"), "{log}");
    assert_eq!(cache_files(), ["kept"]);

    let ro = "RUN --mount=type=cache,id=c,target=/c,ro echo x > /c/new";
    let (code, log) = build(&format!("{ro}\n"));
    assert_ne!(code, 0, "{log}");
    assert!(
        log.contains(&format!("Dockerfile:2: {ro}: "))
            && log.contains("the command wrote to /c, a read-only mount (changed: ., new)"),
        "{log}"
    );
    assert!(log.contains("what it wrote to the cache is dropped"), "{log}");
    assert_eq!(cache_files(), ["kept"], "the cache was copied in from the /cache volume: its original is kept");

    let (code, log) = build("RUN --mount=type=bind,source=src,target=/src rm /src/hello\n");
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("the command wrote to /src, a read-only mount (changed: ., hello)"), "{log}");
    assert!(workspace.path().join("src/hello").exists());

    let (code, log) = build("RUN --mount=type=tmpfs,target=/t,size=65536 head -c 65537 /dev/zero > /t/big\n");
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("the command left 65537 bytes in the tmpfs mount at /t, over its size=65536"), "{log}");
}
