//! `COPY --from` a stage or an image whose layers the store holds: mounted from the store, or
//! extracted, and a whole root when an extraction never settles.

use super::*;

/// `COPY --from` a builder served from the cache, whose base the store holds: the builder's
/// root is mounted from the store (only its own small layer is downloaded and unpacked), not
/// extracted from its layers, which would download and read the whole base. The image is the
/// one a build without the store makes.
#[test]
fn copy_from_a_cached_builder_on_a_stored_base_mounts_it_from_the_store() {
    let base = layered_base();
    let df = "FROM BASE AS builder\nRUN mkdir /out && echo built > /out/app && cat /data/a-hard > /out/a\n\
              FROM BASE\nARG N\nRUN echo $N > /n\nCOPY --from=builder /out /app\n"
        .replace("BASE", base);
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let cache_repo = format!("{}/{}", env().registry, unique_repo("store-from-cache"));
    let base_layers: Vec<String> = skopeo_manifest(base)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let build = |n: &str, dest: &str, extra: &[&str]| {
        let mut args = vec!["--cache", "--build-arg", n, "--destination", dest];
        args.extend_from_slice(extra);
        Build::new(&df, None).run(&args)
    };

    let first = build("N=1", &dest("store-from-1"), &["--cache-repo", &cache_repo, "--cache-dir", cache_dir]);
    assert_eq!(first.unpacked.len(), 2, "both stages have roots: {:?}", first.unpacked);

    // The builder is cached now; the final stage's RUN changes, so its COPY --from runs.
    let dest2 = dest("store-from-2");
    let second = build("N=2", &dest2, &["--cache-repo", &cache_repo, "--cache-dir", cache_dir]);
    assert!(second.extracted.is_empty(), "extracted instead of mounted: {:?}", second.extracted);
    // The trace and the log say so: the builder's base layers were in the store, its own
    // layer was unpacked into it now.
    assert_eq!(second.sources.len(), 1, "{:#?}", second.sources);
    let src = &second.sources[0];
    assert_eq!(
        (src["stage"].as_u64(), src["layers"].as_u64(), src["from_store"].as_u64()),
        (Some(0), Some(5), Some(4)),
        "{src}"
    );
    assert!(src["entries"].as_u64().unwrap() > 0 && src["store_unused"].is_null(), "{src}");
    assert_eq!(src["why"], "the unpacked-layer store holds most of its layers");
    assert_eq!(src["for_step"], serde_json::json!({"stage": 1, "step": 3}), "the COPY --from's time holds it");
    assert!(
        second.log.contains(
            "Mounted stage 0's 5 layer(s) from the unpacked-layer store (4 there already, 1 unpacked into the store: "
        ),
        "{}",
        second.log
    );
    let downloaded_base: Vec<&String> = second.pulled.iter().filter(|d| base_layers.contains(d)).collect();
    assert!(downloaded_base.is_empty(), "the base was downloaded: {downloaded_base:?}");
    let img = pull_and_unpack(&dest2);
    assert_eq!(Tree::content(&img.rootfs(), "/app/app"), "built\n");
    assert_eq!(Tree::content(&img.rootfs(), "/app/a"), "a\n");
    assert_eq!(Tree::content(&img.rootfs(), "/n"), "2\n");

    // A build with neither the store nor that cache makes the same image.
    let other_repo = format!("{}/{}", env().registry, unique_repo("store-from-other"));
    let plain = build("N=2", &dest("store-from-plain"), &["--cache-repo", &other_repo]);
    assert_eq!(plain.digest, second.digest);
}

/// A `COPY --from` an image whose file is the end of a chain of hard links (each a link to the
/// one before, as a hand-written layer may have it): each pass of the extraction finds one
/// more link outside what it wrote, so a long chain makes it give up, and a whole root is made. The trace and
/// the log say so, with how long the extraction tried, which the step's time holds too; the
/// copy is the file's content.
#[test]
fn a_copy_from_whose_reads_never_settle_gets_a_whole_root_and_says_how_long_it_tried() {
    let names: Vec<String> = (0..8).map(|i| format!("chain/h{i}")).collect();
    let mut entries = vec![(names[0].as_str(), tar::EntryType::Regular, &b"end of the chain\n"[..], None)];
    for i in 1..8 {
        entries.push((names[i].as_str(), tar::EntryType::Link, b"", Some(names[i - 1].as_str())));
    }
    let layer = hand_layer(&entries);
    let image = hardening_support::push_image(&unique_repo("store-chain"), &layer).reference;
    let df = format!("FROM {}\nCOPY --from={image} /chain/h7 /got\n", env().busybox());
    let dest1 = dest("store-chain");
    let done = Build::new(&df, None).run(&["--destination", &dest1]);
    assert!(done.extracted.is_empty(), "{:?}", done.extracted);
    assert_eq!(done.sources.len(), 1, "{:#?}", done.sources);
    let src = &done.sources[0];
    assert_eq!(src["image"], image.as_str(), "{src}");
    assert!(src["from_store"].is_null() && src["store_unused"].as_str().unwrap().contains("no cache dir"), "{src}");
    let why = src["why"].as_str().unwrap();
    assert!(why.starts_with("what the step reads led to more paths") && why.contains("it gave up after "), "{why}");
    assert!(done.log.contains(&format!("({why})")), "{}", done.log);
    let img = pull_and_unpack(&dest1);
    assert_eq!(Tree::content(&img.rootfs(), "/got"), "end of the chain\n");

    // A shorter chain settles, a link more per pass. (Before, a link to a link failed the
    // build: "hardlink target /chain/h1 does not exist".)
    let df = format!("FROM {}\nCOPY --from={image} /chain/h2 /got\n", env().busybox());
    let dest2 = dest("store-chain-short");
    let done = Build::new(&df, None).run(&["--destination", &dest2]);
    assert!(done.sources.is_empty(), "{:?}", done.sources);
    assert_eq!(done.extracted.len(), 1, "{:?}", done.extracted);
    assert_eq!(done.extracted[0]["passes"], 3, "{}", done.extracted[0]);
    let img = pull_and_unpack(&dest2);
    assert_eq!(Tree::content(&img.rootfs(), "/got"), "end of the chain\n");
}
