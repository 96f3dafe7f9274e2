//! What a build served by the cache downloads and sends: base layers only for a destination
//! that needs them, nothing for an unchanged rebuild (the same image), built layers mounted
//! from the cache repository without asking first, the push not waiting for a layer still going
//! up; config-only steps of a scratch stage dated by its first layer.

use super::*;

/// A fully cached build needs no base layer locally: a destination on the base's registry
/// mounts it, one that already has it skips it, and only a destination on another registry gets
/// it downloaded, during its push. Each image is checked with skopeo.
#[test]
fn base_layers_are_downloaded_only_for_a_destination_that_needs_them() {
    let e = env();
    let c = Ctx::new("lazy-base", &format!("{}RUN echo hi > /hi\n", from()));
    c.build(&[]).steps.iter().for_each(|(_, r)| assert!(r.starts_with("miss"), "{r}"));

    let traced = |dest: &str, docker_config: &Path| -> Vec<Value> {
        let trace = c.path().join("..").join(format!("{}.trace", unique_repo("t")));
        let o = run(trowel()
            .env("DOCKER_CONFIG", docker_config)
            .args(["build", "--cache", "--cache-copy-layers", "--reproducible", "--cache-repo", &c.cache_repo])
            .args(["--destination", dest, "--context"])
            .arg(c.path())
            .arg("--trace")
            .arg(&trace));
        assert_ok(&o);
        assert!(stderr(&o).contains("Cache: 1 hit(s), 0 miss(es)"), "{}", stderr(&o));
        let text = std::fs::read_to_string(&trace).unwrap();
        let _ = std::fs::remove_file(&trace);
        text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // (The cached layer itself is downloaded to list its files in the trace.)
    let base_pulls = |events: &[Value]| {
        events.iter().filter(|x| x["event"] == "pull_progress" && x["reference"] == e.busybox().as_str()).count()
    };
    let actions = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|x| x["event"] == "blob_pushed")
            .map(|x| x["action"].as_str().unwrap().to_string())
            .collect()
    };
    let no_config = tempfile::tempdir().unwrap();

    // Same registry, new repository: the base layer is mounted, never downloaded.
    let mounted = format!("{}/{}:1", e.registry, unique_repo("lazy-mounted"));
    let events = traced(&mounted, no_config.path());
    assert_eq!(base_pulls(&events), 0, "the base is not downloaded");
    assert!(actions(&events).contains(&"mounted".to_string()), "{:?}", actions(&events));
    assert_eq!(skopeo_manifest(&mounted)["layers"].as_array().unwrap().len(), 2);

    // Pushed again: everything is already there.
    let events = traced(&mounted, no_config.path());
    assert_eq!(base_pulls(&events), 0);
    assert!(actions(&events).iter().all(|a| a == "existed"), "{:?}", actions(&events));

    // Another registry: the base layer is downloaded for the upload, and the image is whole.
    let cfg = tempfile::tempdir().unwrap();
    let auth = base64_encode(&format!("{}:{}", e.auth_user, e.auth_password));
    std::fs::write(
        cfg.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, e.auth_registry),
    )
    .unwrap();
    let elsewhere = format!("{}/{}:1", e.auth_registry, unique_repo("lazy-elsewhere"));
    let events = traced(&elsewhere, cfg.path());
    assert!(actions(&events).iter().filter(|a| *a == "uploaded").count() >= 2, "{:?}", actions(&events));
    let out = tempfile::tempdir().unwrap();
    let copied = run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &format!("{}:{}", e.auth_user, e.auth_password),
        &format!("docker://{elsewhere}"),
        &format!("dir:{}", out.path().join("img").display()),
    ]));
    assert_ok(&copied);
}

/// History times follow where each step's result came from: a rebuild in which nothing ran
/// reproduces the previous image, digest included, and pushes nothing; a step that runs is
/// stamped with the time of its build, and the steps served from the cache keep theirs.
#[test]
fn a_rebuild_in_which_nothing_ran_is_the_same_image_and_sends_nothing() {
    let c = Ctx::new(
        "stamps",
        &format!("{}ENV A=1\nRUN echo x > /x\nLABEL l=1\nCOPY f.txt /f.txt\nCMD [\"sh\"]\n", from()),
    );
    c.write("f.txt", "one\n");
    let first = c.build_timed(&[]);
    let config = skopeo_config(&c.dest);
    let base = skopeo_config(&env().busybox());
    let created = |h: &Value| h["created"].as_str().unwrap().to_string();
    let history = config["history"].as_array().unwrap().clone();
    let ours = &history[history.len() - 5..];
    // ENV took the base's time: nothing of the stage had been made yet.
    assert_eq!(created(&ours[0]), base["created"].as_str().unwrap(), "{ours:?}");
    // LABEL and CMD take the time of the step before them.
    assert_eq!(created(&ours[2]), created(&ours[1]));
    assert_eq!(created(&ours[4]), created(&ours[3]));
    assert_eq!(config["created"].as_str().unwrap(), created(&ours[3]), "the image is as new as its newest step");

    // Timestamps have a resolution of a second: make sure the clock has moved on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = c.build_timed(&[]);
    second.all_hit();
    assert_eq!(second.digest, first.digest, "nothing ran: the same image");
    assert!(second.log.contains("(unchanged: the registry already had it)"), "{}", second.log);
    assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), first.digest);

    c.write("f.txt", "two\n");
    let third = c.build_timed(&[]);
    assert_eq!(third.at(3), "hit");
    assert!(third.at(5).starts_with("miss"), "{:?}", third.steps);
    assert_ne!(third.digest, first.digest);
    assert!(!third.log.contains("unchanged"), "{}", third.log);
    let config3 = skopeo_config(&c.dest);
    let h3 = config3["history"].as_array().unwrap();
    let ours3 = &h3[h3.len() - 5..];
    assert_eq!(created(&ours3[1]), created(&ours[1]), "the cached RUN keeps its time");
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(t(&created(&ours3[3])) > t(&created(&ours[3])), "the COPY ran again: {ours3:?}");
    assert_eq!(config3["created"].as_str().unwrap(), created(&ours3[3]));
}

/// Config-only steps at the top of a `FROM scratch` stage have no earlier time to take: they get
/// the time of the first step that makes something.
#[test]
fn scratch_stage_config_steps_take_the_time_of_the_first_layer() {
    let c = Ctx::new("scratchstamps", "FROM scratch\nENV A=1\nLABEL x=y\nCOPY f.txt /f.txt\n");
    c.write("f.txt", "f\n");
    let first = c.build_timed(&[]);
    let config = skopeo_config(&c.dest);
    let h = config["history"].as_array().unwrap();
    assert_eq!(h.len(), 3, "{h:?}");
    let copy_time = h[2]["created"].as_str().unwrap();
    assert_eq!(h[0]["created"].as_str().unwrap(), copy_time);
    assert_eq!(h[1]["created"].as_str().unwrap(), copy_time);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(c.build_timed(&[]).digest, first.digest);
}

/// A layer a step built goes to the registry once: it is uploaded to the cache repository while
/// it is written, and the destination, on the same registry, mounts it from there. (Both layers
/// are over 64 KiB: a smaller one still on its way to the cache repository when the push comes
/// is uploaded to the destination too, `tests/cold_overlap/tail_sessions.rs`.)
#[test]
fn built_layers_are_mounted_from_the_cache_repo() {
    let c = Ctx::new("mount-built", &format!("{}RUN head -c 300000 /dev/urandom > /r\nCOPY f.txt /f.txt\n", from()));
    c.write("f.txt", &incompressible(150_000));
    let o = c.build(&[]);
    let built: Vec<&str> = o
        .events
        .iter()
        .filter(|e| e["event"] == "layer_written")
        .map(|e| e["layer"]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(built.len(), 2, "{:?}", o.events);
    for d in &built {
        let pushed = o
            .events
            .iter()
            .find(|e| e["event"] == "blob_pushed" && e["digest"] == *d)
            .unwrap_or_else(|| panic!("{d} not pushed"));
        assert_eq!(pushed["action"], "mounted", "{pushed}");
    }
    // Both layers were uploaded to the cache repository while they were being written.
    let stored: Vec<&Value> = o.events.iter().filter(|e| e["event"] == "cache_stored").collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.iter().all(|e| e["streamed"] == true), "{stored:?}");
    // The push waited for the layers' uploads, not for the entries (a registry mounts only a
    // blob it has: "mounted" above says the uploads were over), and the build for both.
    let finished = o.events.iter().position(|e| e["event"] == "build_finished").unwrap();
    let last_stored = o.events.iter().rposition(|e| e["event"] == "cache_stored").unwrap();
    assert!(last_stored < finished, "every cache write is over before the build ends");
    // Independent clients see a whole image.
    assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), o.digest);
    let t = pull_and_unpack(&c.dest).tree();
    assert_eq!(t.get("/r").size, 300000);
    assert_eq!(t.get("/f.txt").size, 150_000);
}

/// `len` bytes of printable text that gzip cannot shrink much (a fixed pseudo-random sequence:
/// the same in every build).
fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 94) as u8)
        })
        .collect()
}

/// A RUN that writes 150,000 pseudo-random printable bytes, the same in every build (a layer
/// over 64 KiB, which the push mounts from the cache repository rather than send twice).
fn run_writing_a_large_layer(path: &str) -> String {
    format!(
        "RUN awk 'BEGIN {{ x = 7; for (i = 0; i < 150000; i++) {{ x = (x * 69069 + 1) % 4294967296; printf \"%c\", 33 + x % 94 }} }}' > {path}\n"
    )
}

/// A layer a step built is mounted into the destination without asking first whether the
/// destination has it (only an earlier build of the same bytes could have put it there, and the
/// mount answers for that case too). When the mount is refused, the destination is asked, and a
/// layer it already has is not sent again. (A layer over 64 KiB, the same bytes in both builds.)
#[test]
fn a_built_layer_is_mounted_without_asking_first() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let df = format!("{}{}", from(), run_writing_a_large_layer("/hi"));
    let c = Ctx::at(&proxy.addr, "mountfirst", &df);
    let dest_repo = c.dest.split_once('/').unwrap().1.rsplit_once(':').unwrap().0.to_string();
    let asked = |from: usize, digest: &str| {
        proxy.seen()[from..].iter().any(|s| s == &format!("HEAD /v2/{dest_repo}/blobs/{digest}"))
    };
    let action = |o: &Outcome, digest: &str| {
        let e = o.events.iter().find(|e| e["event"] == "blob_pushed" && e["digest"] == digest);
        e.unwrap_or_else(|| panic!("{digest} not pushed: {:?}", o.events))["action"].as_str().unwrap().to_string()
    };

    let o = c.build(&[]);
    let layer = o.events.iter().find(|e| e["event"] == "layer_written").unwrap()["layer"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(action(&o, &layer), "mounted");
    assert!(!asked(0, &layer), "{:?}", proxy.seen());
    let hex = layer.strip_prefix("sha256:").unwrap();
    let mounts = |from: usize| -> Vec<String> {
        proxy.seen()[from..]
            .iter()
            .filter(|s| s.starts_with(&format!("POST /v2/{dest_repo}/blobs/uploads/?mount=")) && s.contains(hex))
            .cloned()
            .collect()
    };
    assert_eq!(mounts(0).len(), 1, "{:?}", proxy.seen());

    // The same image, built again from an empty cache repository (so its RUN runs and makes the
    // same bytes, `--reproducible`), to the same destination, every mount refused.
    let again = tempfile::tempdir().unwrap();
    std::fs::write(again.path().join("Dockerfile"), &df).unwrap();
    let c2 =
        Ctx { dir: again, cache_repo: format!("{}/{}/cache", proxy.addr, unique_repo("mountfirst2")), dest: c.dest };
    proxy.inject("POST", "?mount=", faults::Fault::Status { code: 202, retry_after: None }, 1);
    let before = proxy.seen().len();
    let o2 = c2.build(&[]);
    assert!(o2.at(2).starts_with("miss"), "{:?}", o2.steps);
    assert_eq!(mounts(before).len(), 1, "{:?}", &proxy.seen()[before..]);
    assert!(asked(before, &layer), "asked after the refused mount: {:?}", &proxy.seen()[before..]);
    assert_eq!(action(&o2, &layer), "existed");
    let uploads_to_dest = proxy.seen()[before..]
        .iter()
        .filter(|s| s.starts_with(&format!("PUT /v2/{dest_repo}/blobs/uploads/")) && s.contains(hex))
        .count();
    assert_eq!(uploads_to_dest, 0, "{:?}", &proxy.seen()[before..]);
    assert!(proxy.unused().is_empty(), "{:?}", proxy.unused());
    assert_eq!(skopeo_inspect(&c2.dest)["Digest"].as_str().unwrap(), o2.digest);
}

/// The push does not wait for a layer still going up to the cache repository: while that
/// upload is held at the registry, the destination is already asked about the image's other
/// blobs, and the layer (over 64 KiB: not sent twice) is mounted once its upload is over.
#[test]
fn the_push_goes_on_while_a_built_layer_is_still_going_up() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let c = Ctx::at(&proxy.addr, "arrival", &format!("{}{}", from(), run_writing_a_large_layer("/hi")));
    let cache_path = c.cache_repo.split_once('/').unwrap().1.to_string();
    let dest_repo = c.dest.split_once('/').unwrap().1.rsplit_once(':').unwrap().0.to_string();
    // The cache repository's first upload to finish is the RUN's layer, streamed as written.
    let commit = format!("PUT /v2/{cache_path}/blobs/uploads/");
    let hold = std::time::Duration::from_secs(10);
    proxy.inject("PUT", &format!("/v2/{cache_path}/blobs/uploads/"), faults::Fault::Hold { pause: hold }, 1);
    std::thread::scope(|s| {
        let build = s.spawn(|| c.build(&[]));
        proxy.wait_applied(&commit, std::time::Duration::from_secs(120));
        let t0 = std::time::Instant::now();
        // Asked after the hold began (the push check's upload session was opened long before).
        let held_at = proxy.seen().iter().position(|r| r.starts_with(&commit)).unwrap();
        let asked = || proxy.seen()[held_at..].iter().any(|r| r.contains(&format!(" /v2/{dest_repo}/blobs/")));
        while !asked() && t0.elapsed() < hold - std::time::Duration::from_secs(2) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(asked(), "nothing was asked of the destination while the layer went up: {:?}", proxy.seen());
        let o = build.join().unwrap();
        let layer = o.events.iter().find(|e| e["event"] == "layer_written").unwrap()["layer"]["digest"].clone();
        let pushed = o.events.iter().find(|e| e["event"] == "blob_pushed" && e["digest"] == layer).unwrap();
        assert_eq!(pushed["action"], "mounted", "{pushed}");
        assert_eq!(skopeo_inspect(&c.dest)["Digest"].as_str().unwrap(), o.digest);
    });
}
