//! A root mounted from the store is indexed without reading its base files, and a kept index
//! is extended over the layers above it: neither may miss a change a RUN makes to a base file.

use super::*;

#[test]
fn a_store_root_indexed_without_reading_its_base_misses_no_change() {
    let base = layered_base();
    let df = format!(
        "FROM {base}\n\
         RUN true >> /top && m=$(stat -c %a /etc/group) && chmod 600 /etc/group && chmod $m /etc/group \
          && chown 5 /data/a && chown 0 /data/a\n\
         RUN touch -r /top /ref && printf 'TOP\\n' > /top && touch -r /ref /top && rm /ref\n\
         RUN cp -p /etc/passwd /p && ln -f /p /etc/passwd && rm /p && cp -p /etc/group /g && mv /g /etc/group \
          && chown 1:1 /opq/new && chmod 600 /data/a\n"
    );
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let plain = Build::new(&df, None).run(&["--destination", &dest("lazy-plain")]);
    // What the RUNs changed of files (directories' times move with anything made in them).
    let files: Vec<Vec<&str>> = plain
        .snapshots
        .iter()
        .map(|s| s.iter().map(String::as_str).filter(|c| !c.contains(" dir ")).collect())
        .collect();
    assert_eq!(
        files,
        [
            vec![],
            vec!["modified file /top"],
            vec![
                "modified file /data/a",
                "modified hardlink /data/a-hard",
                "modified file /etc/group",
                "modified file /etc/passwd",
                "modified file /opq/new"
            ],
        ],
        "{:?}",
        plain.snapshots
    );
    // Made and walked (its index kept), then found and its index read back, twice (a build
    // that walks keeps a new file: the same file says it was not walked); then the kept index
    // cut short (as a crash could leave it): walked again, and kept whole again.
    let indexes = cache.path().join("unpacked/indexes");
    let index = || -> (u64, u64) {
        use std::os::unix::fs::MetadataExt as _;
        let files: Vec<PathBuf> = std::fs::read_dir(&indexes).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "one index, the top entry's: {files:?}");
        let m = std::fs::metadata(&files[0]).unwrap();
        (m.ino(), m.len())
    };
    let mut kept = (0, 0);
    for (i, name) in ["lazy-making", "lazy-hit", "lazy-kept", "lazy-cut"].into_iter().enumerate() {
        let d = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest(name)]);
        assert_eq!(d.unpacked[0]["from_store"].as_u64(), Some(if i == 0 { 0 } else { 4 }), "{:?}", d.unpacked);
        assert_eq!(d.snapshots, plain.snapshots, "{name}: a store-mounted root saw other changes");
        assert_eq!(d.befores, plain.befores, "{name}: the before of a change differs");
        assert_eq!(d.digest, plain.digest, "{name}");
        match name {
            "lazy-making" => kept = index(),
            "lazy-hit" => assert_eq!(index(), kept, "the kept index was used, not walked again and replaced"),
            "lazy-kept" => {
                assert_eq!(index(), kept, "the kept index was used again");
                let file = std::fs::read_dir(&indexes).unwrap().next().unwrap().unwrap().path();
                let bytes = std::fs::read(&file).unwrap();
                std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
            }
            _ => {
                let now = index();
                assert_ne!(now.0, kept.0, "walked again and kept anew");
                assert_eq!(now.1, kept.1, "kept whole");
            }
        }
    }
}

#[test]
fn a_root_with_a_layer_more_than_a_kept_index_extends_it_and_misses_no_change() {
    // An image one layer above the layered base; the layer deletes lower files, makes a
    // lower directory opaque, changes a lower file, and adds a file into a lower directory,
    // an empty directory and a symlink.
    let base = layered_base();
    let top = format!("{}/{}:top", env().registry, unique_repo("store-top"));
    let top_df = format!(
        "FROM {base}\nRUN rm /top && rm -rf /opq && mkdir /opq && echo x > /opq/x && echo g >> /etc/group \
         && mkdir /empty && echo n > /newfile && ln -s /newfile /newlink && echo t > /data/sub/t && rm /data/c\n"
    );
    Build::new(&top_df, None).run(&["--destination", &top]);
    // A RUN that looks at and changes what that layer made, and makes again what it deleted
    // or hid: an index that missed any of it would see other changes than a plain root does.
    let df = format!(
        "FROM {top}\nRUN test ! -e /top && m=$(stat -c %a /etc/group) && chmod 600 /etc/group && chmod $m /etc/group \
         && echo more >> /opq/x && touch /empty/f && rm /newfile && echo u >> /data/sub/t && readlink /newlink > /seen \
         && echo again > /top && echo again > /opq/new && echo again > /data/c\n"
    );
    let plain = Build::new(&df, None).run(&["--destination", &dest("extend-plain")]);
    let files: Vec<&str> = plain.snapshots[0].iter().map(String::as_str).filter(|c| !c.contains(" dir ")).collect();
    assert_eq!(
        files,
        [
            "added file /data/c",
            "modified file /data/sub/t",
            "added file /empty/f",
            "deleted file /newfile",
            "added file /opq/new",
            "modified file /opq/x",
            "added file /seen",
            "added file /top"
        ],
        "{:?}",
        plain.snapshots
    );
    let cache = tempfile::Builder::new().prefix("trowel-store-cache-").tempdir_in("/var/tmp").unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let index = |d: &Done| d.unpacked[0]["index"].clone();
    // The base's four entries, walked and their index kept.
    let made = Build::new(&format!("FROM {base}\nRUN true >> /top\n"), None).run(&[
        "--cache-dir",
        cache_dir,
        "--destination",
        &dest("extend-base"),
    ]);
    assert_eq!(index(&made)["how"], "walked", "{:?}", made.unpacked);
    // One entry more: the kept index brought up to date with what it holds, then kept itself.
    for (name, how) in [("extend-extended", "extended"), ("extend-kept", "kept")] {
        let d = Build::new(&df, None).run(&["--cache-dir", cache_dir, "--destination", &dest(name)]);
        assert_eq!(
            d.unpacked[0]["from_store"].as_u64(),
            Some(if how == "extended" { 4 } else { 5 }),
            "{:?}",
            d.unpacked
        );
        assert_eq!(index(&d)["how"], how, "{name}: {:?}", d.unpacked);
        if how == "extended" {
            assert_eq!(index(&d)["layers"], 1, "{:?}", d.unpacked);
            let paths = index(&d)["paths"].as_u64().unwrap();
            assert!(paths < 100, "{paths} paths looked at: only the new layer's (and their parents)");
        }
        assert_eq!(d.snapshots, plain.snapshots, "{name}: a store-mounted root saw other changes");
        assert_eq!(d.befores, plain.befores, "{name}: the before of a change differs");
        assert_eq!(d.digest, plain.digest, "{name}");
    }
    // A layer more that adds as many files as the root has paths, into a directory of the root
    // (each a path to diff from the root down): walked, which costs less.
    let root_paths = index(&made)["paths"].as_u64().unwrap();
    let many = format!("{}/{}:many", env().registry, unique_repo("store-many"));
    let many_df = format!("FROM {base}\nRUN cd /data && for i in $(seq {root_paths}); do : > f$i; done\n");
    Build::new(&many_df, None).run(&["--destination", &many]);
    let d = Build::new(&format!("FROM {many}\nRUN true >> /top\n"), None).run(&[
        "--cache-dir",
        cache_dir,
        "--destination",
        &dest("extend-many"),
    ]);
    assert_eq!(d.unpacked[0]["from_store"].as_u64(), Some(4), "{:?}", d.unpacked);
    assert_eq!(index(&d)["how"], "walked", "{:?}", d.unpacked);
}
