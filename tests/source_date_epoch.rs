//! `SOURCE_DATE_EPOCH`, BuildKit's build argument for reproducible builds: this build's history
//! entries and its image's `created` carry that time whether their steps ran or were cached,
//! the directories WORKDIR makes are dated by it, the base image's own history is left as it
//! is, and an unchanged rebuild from the cache is the same image, digest for digest. Read back
//! with skopeo and umoci.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

const JAN_2024: i64 = 1_704_067_200;

fn history_times(reference: &str) -> Vec<String> {
    skopeo_config(reference)["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn source_date_epoch_dates_the_image_and_what_workdir_makes() {
    let ctx = tempfile::tempdir().unwrap();
    let b = env().busybox();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {b}\nWORKDIR /app/sub\nRUN echo x > /f\nENV A=1\nCOPY a.txt /a.txt\n"),
    )
    .unwrap();
    std::fs::write(ctx.path().join("a.txt"), "a\n").unwrap();
    let repo = unique_repo("sde");
    let dest = format!("{}/sde/{repo}:1", env().registry);
    let cache_repo = format!("{}/sde/{repo}-cache", env().registry);
    let build = |epoch: &str| {
        run(trowel()
            .arg("build")
            .arg("--context")
            .arg(ctx.path())
            .arg("--destination")
            .arg(&dest)
            .arg("--cache=true")
            .arg("--cache-repo")
            .arg(&cache_repo)
            .arg("--build-arg")
            .arg(format!("SOURCE_DATE_EPOCH={epoch}")))
    };
    let base_times = history_times(&b);

    let o = build(&JAN_2024.to_string());
    assert_ok(&o);
    assert!(!stderr(&o).contains("build arg SOURCE_DATE_EPOCH"), "not reported as unused:\n{}", stderr(&o));
    let config = skopeo_config(&dest);
    assert_eq!(config["created"], "2024-01-01T00:00:00Z");
    let times = history_times(&dest);
    assert_eq!(times[..base_times.len()], base_times[..], "the base's history is its own");
    assert_eq!(times.len(), base_times.len() + 4);
    assert!(times[base_times.len()..].iter().all(|t| t == "2024-01-01T00:00:00Z"), "{times:?}");
    let unpacked = pull_and_unpack(&dest);
    for dir in ["app", "app/sub"] {
        let md = std::fs::symlink_metadata(unpacked.rootfs().join(dir)).unwrap();
        assert_eq!(md.mtime(), JAN_2024, "/{dir}, made by WORKDIR");
    }
    let first = skopeo_inspect(&dest)["Digest"].clone();

    // Every step from the cache: the same image.
    let o = build(&JAN_2024.to_string());
    assert_ok(&o);
    assert_eq!(skopeo_inspect(&dest)["Digest"], first, "an unchanged rebuild is the same image");

    // Another time: the same layers, dated again (the cached steps too).
    let o = build("1000000000");
    assert_ok(&o);
    assert_eq!(skopeo_config(&dest)["created"], "2001-09-09T01:46:40Z");
    let times = history_times(&dest);
    assert!(times[base_times.len()..].iter().all(|t| t == "2001-09-09T01:46:40Z"), "{times:?}");
}

#[test]
fn a_global_arg_default_dates_the_image_and_a_bad_value_is_refused_before_the_pull() {
    let ctx = tempfile::tempdir().unwrap();
    let b = env().busybox();
    std::fs::write(ctx.path().join("Dockerfile"), format!("ARG SOURCE_DATE_EPOCH=1000000000\nFROM {b}\nENV A=1\n"))
        .unwrap();
    let dest = format!("{}/sde/{}:1", env().registry, unique_repo("sde-arg"));
    let o = run(trowel().arg("build").arg("--context").arg(ctx.path()).arg("--destination").arg(&dest));
    assert_ok(&o);
    assert_eq!(skopeo_config(&dest)["created"], "2001-09-09T01:46:40Z");

    let r = &env().registry;
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {r}/never-pulled:1\nRUN true\n")).unwrap();
    let o = run(trowel()
        .arg("build")
        .arg("--context")
        .arg(ctx.path())
        .arg("--no-push")
        .arg("--build-arg")
        .arg("SOURCE_DATE_EPOCH=yesterday"));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("error building image: SOURCE_DATE_EPOCH=\"yesterday\": expected the seconds since 1970"),
        "{err}"
    );
    assert!(!err.contains("never-pulled"), "refused before the pull:\n{err}");
}

/// `SOURCE_DATE_EPOCH=context` with a directory context, given or a global ARG's default: unset,
/// as BuildKit leaves it (a directory has no time of its own), so the image has the build's
/// time and a RUN sees the argument empty, not the word. (A git or https context's time:
/// `context_git.rs`, `context_https.rs`.)
#[test]
fn source_date_epoch_context_of_a_directory_is_unset() {
    let ctx = tempfile::tempdir().unwrap();
    let b = env().busybox();
    for (global, given) in [("", true), ("=context", false)] {
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("ARG SOURCE_DATE_EPOCH{global}\nFROM {b}\nARG SOURCE_DATE_EPOCH\nRUN echo \"[$SOURCE_DATE_EPOCH]\" > /sde\n"),
        )
        .unwrap();
        let dest = format!("{}/sde/{}:1", env().registry, unique_repo("sde-context"));
        let mut cmd = trowel();
        cmd.arg("build").arg("--context").arg(ctx.path()).arg("--destination").arg(&dest);
        if given {
            cmd.args(["--build-arg", "SOURCE_DATE_EPOCH=context"]);
        }
        let o = run(&mut cmd);
        assert_ok(&o);
        let created = skopeo_config(&dest)["created"].as_str().unwrap().to_string();
        assert!(created.starts_with("20") && !created.starts_with("2001"), "the build's own time: {created}");
        assert_eq!(Tree::content(&pull_and_unpack(&dest).rootfs(), "/sde"), "[]\n", "given: {given}");
    }
}
