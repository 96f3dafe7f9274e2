//! What a person reading a CI log sees when a build fails: the exact error line for a dozen
//! kinds of bad input, each naming the Dockerfile, the line and the instruction, and the exit
//! code. Errors are typed inside the engine (they keep their sources); these tests pin that the
//! words that reach the log stay as clear as they are.

mod common;

use common::*;

/// Builds `dockerfile` (with `a.txt` beside it) and returns the `error building image` text and
/// the exit code.
fn fail(dockerfile: &str, extra: &[&str]) -> (String, String, i32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
    let o = run(trowel().arg("build").arg("--context").arg(dir.path()).arg("--no-push").args(extra));
    let err = stderr(&o);
    let line = err
        .lines()
        .find_map(|l| l.split_once("error building image: ").map(|(_, m)| m.to_string()))
        .unwrap_or_else(|| panic!("no error line in:\n{err}"));
    let path = format!("{}/Dockerfile", dir.path().display());
    (line.replace(&path, "Dockerfile"), err, o.status.code().unwrap_or(-1))
}

fn assert_fails(dockerfile: &str, extra: &[&str], want: &str, code: i32) {
    let (got, all, exit) = fail(dockerfile, extra);
    assert_eq!(got, want, "full stderr:\n{all}");
    assert_eq!(exit, code, "exit code; full stderr:\n{all}");
}

#[test]
fn dockerfile_mistakes_name_the_line_and_instruction() {
    let b = env().busybox();
    assert_fails(&format!("FROM {b}\nFOO bar\n"), &[], "Dockerfile:2: FOO bar: unknown instruction FOO", 1);
    assert_fails(
        &format!("FROM {b}\nCOPY --nope a.txt /x\n"),
        &[],
        "Dockerfile:2: COPY --nope a.txt /x: unknown flag: --nope (COPY accepts --from, --chown, --chmod, --link, \
         --parents, --exclude)",
        1,
    );
    assert_fails(
        &format!("FROM {b}\n"),
        &["--target", "nope"],
        "Dockerfile: target stage \"nope\" could not be found; available stages: none (no stage is named)",
        1,
    );
    assert_fails(
        "FROM UPPER/Case:1\n",
        &[],
        "Dockerfile:1: FROM UPPER/Case:1: failed to parse stage name \"UPPER/Case:1\": invalid reference format: \
         repository name must be lowercase",
        1,
    );
    assert_fails(
        &format!("FROM {b}\nADD --checksum=sha256:abc http://127.0.0.1:1/x /x\n"),
        &[],
        "Dockerfile:2: ADD --checksum=sha256:abc http://127.0.0.1:1/x /x: invalid --checksum value \"sha256:abc\": \
         expected sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>",
        1,
    );
}

#[test]
fn copy_problems_say_which_source() {
    let b = env().busybox();
    assert_fails(
        &format!("FROM {b}\nCOPY nope.txt /x\n"),
        &[],
        "Dockerfile:2: COPY nope.txt /x: \"/nope.txt\": not found",
        1,
    );
    // A wildcard may match nothing (BuildKit), but the directory it is matched in must exist.
    assert_fails(
        &format!("FROM {b}\nCOPY nodir/*.txt /x/\n"),
        &[],
        "Dockerfile:2: COPY nodir/*.txt /x/: \"/nodir\": not found",
        1,
    );
    // `..` stays at the root of the context (BuildKit): what is missing is the clamped path.
    assert_fails(&format!("FROM {b}\nCOPY ../x /x\n"), &[], "Dockerfile:2: COPY ../x /x: \"/x\": not found", 1);
    assert_fails(
        &format!("FROM {b}\nCOPY --chown=nobodyhere a.txt /x\n"),
        &[],
        "Dockerfile:2: COPY --chown=nobodyhere a.txt /x: --chown=nobodyhere: unable to find user nobodyhere in the \
         image's /etc/passwd",
        1,
    );
    assert_fails(
        &format!("FROM {b}\nCOPY --chmod=9z9 a.txt /x\n"),
        &[],
        "Dockerfile:2: COPY --chmod=9z9 a.txt /x: invalid --chmod value \"9z9\": an octal mode must be between 0 and 7777",
        1,
    );
    assert_fails(
        &format!("FROM {b}\nCOPY --chmod=u=rwX,go+y a.txt /x\n"),
        &[],
        "Dockerfile:2: COPY --chmod=u=rwX,go+y a.txt /x: invalid --chmod value \"u=rwX,go+y\" (at \"y\"): expected an \
         octal mode such as 0755 or a symbolic one such as u=rwX,go=rX",
        1,
    );
}

#[test]
fn run_failures_keep_the_command_exit_code() {
    let b = env().busybox();
    assert_fails(&format!("FROM {b}\nRUN echo x; exit 7\n"), &[], "Dockerfile:2: RUN echo x; exit 7: exit code 7", 7);
    assert_fails(
        &format!("FROM {b}\nUSER nosuchuser\nRUN true\n"),
        &[],
        "Dockerfile:3: RUN true: unable to find user nosuchuser: no matching entries in passwd file",
        1,
    );
    assert_fails(
        &format!("FROM {b}\nRUN --mount=type=bind,source=nothing-here,target=/c true\n"),
        &[],
        "Dockerfile:2: RUN --mount=type=bind,source=nothing-here,target=/c true: mount source /nothing-here not found in \
         the build context",
        1,
    );
    let r = &env().registry;
    assert_fails(
        &format!("FROM {b}\nRUN --mount=from={r}/no-such-image:1,target=/c true\n"),
        &[],
        &format!(
            "Dockerfile:2: RUN --mount=from={r}/no-such-image:1,target=/c true: pull {r}/no-such-image:1: manifest unknown (404)"
        ),
        1,
    );
    let (got, all, code) = fail(&format!("FROM {b}\nRUN sleep 5\n"), &["--run-timeout", "1"]);
    assert_eq!(got, "Dockerfile:2: RUN sleep 5: timed out after 1s", "{all}");
    assert_ne!(code, 0, "{all}");
}

/// A base that cannot be pulled is reported at its `FROM` (the line of the stage that needs it,
/// as BuildKit shows it), the registry's words once; with a step after it too, whose stage
/// resolves its base ahead: that resolution's error is the build's, not asked for again.
#[test]
fn a_base_that_cannot_be_pulled_is_reported_at_its_from_line() {
    let r = &env().registry;
    assert_fails(
        &format!("FROM {r}/nope:1\n"),
        &[],
        &format!("Dockerfile:1: FROM {r}/nope:1: pull {r}/nope:1: manifest unknown (404)"),
        1,
    );
    let b = env().busybox();
    let (got, all, code) = fail(&format!("FROM {b} AS one\nRUN true\nFROM 127.0.0.1:1/gone:1\nRUN true\n"), &[]);
    assert_eq!(
        got,
        "Dockerfile:3: FROM 127.0.0.1:1/gone:1: pull 127.0.0.1:1/gone:1: cannot reach https://127.0.0.1:1: client error \
         (Connect): tcp connect error: Connection refused (os error 111)",
        "{all}"
    );
    assert_eq!(code, 1);
    // The registry client's retries, once: 3 retries after the first attempt.
    assert_eq!(all.matches("retrying in").count(), 3, "{all}");
}

#[test]
fn what_the_dockerfile_shows_is_refused_before_anything_is_pulled() {
    // The base does not exist and the first RUN would print: neither is reached. The whole
    // instruction is quoted, continuation lines included.
    let r = &env().registry;
    let top = format!("FROM {r}/never-pulled:1\nRUN echo first-step-ran\n");
    for (rest, want) in [
        (
            "RUN \\\n  --mount=type=cache,target=/c,colour=red \\\n  true\n",
            "Dockerfile:3: RUN --mount=type=cache,target=/c,colour=red true: --mount=type=cache,target=/c,colour=red: \
             unexpected key 'colour' in 'colour=red' (one of type, from, source, target, readonly, id, sharing, \
             required, size, mode, uid, gid, env)",
        ),
        (
            "RUN --mount=type=volume,target=/v true\n",
            "Dockerfile:3: RUN --mount=type=volume,target=/v true: --mount=type=volume,target=/v: unsupported mount \
             type \"volume\" (one of bind, cache, tmpfs, secret, ssh)",
        ),
        (
            "RUN --network=bogus true\n",
            "Dockerfile:3: RUN --network=bogus true: unsupported network mode \"bogus\" (one of default, none, host)",
        ),
        (
            "RUN --mount=type=secret,id=npmrc,required \\\n    npm ci\n",
            "Dockerfile:3: RUN --mount=type=secret,id=npmrc,required npm ci: secret npmrc is required but was not \
             given (pass it with --secret id=npmrc,src=FILE or --secret id=npmrc,env=VARIABLE)",
        ),
        (
            "RUN --mount=type=ssh,required git clone git@example.com:x.git\n",
            "Dockerfile:3: RUN --mount=type=ssh,required git clone git@example.com:x.git: ssh agent default is required \
             but was not given (pass it with --ssh default for $SSH_AUTH_SOCK, or --ssh default=SOCKET|KEYFILE)",
        ),
        (
            "RUN --security=insecure true\n",
            "Dockerfile:3: RUN --security=insecure true: RUN --security=insecure needs the entitlement --allow \
             security.insecure (as with buildx): it runs the command with every capability and /proc and /sys unmasked",
        ),
        (
            "RUN --mount=type=bind,target=/ true\n",
            "Dockerfile:3: RUN --mount=type=bind,target=/ true: --mount=type=bind,target=/: invalid mount target \"/\"",
        ),
    ] {
        let (got, all, code) = fail(&format!("{top}{rest}"), &[]);
        assert_eq!(got, want, "{all}");
        assert_eq!(code, 1);
        assert!(!all.contains("first-step-ran") && !all.contains("never-pulled:1@"), "{all}");
    }
}

/// A mount's `from` or `source` that names nothing is only known once the step is reached (an
/// image is looked up in its registry, a source in its stage): the step fails there, naming it.
#[test]
fn a_mount_from_or_source_naming_nothing_fails_at_its_step() {
    let (b, r) = (env().busybox(), &env().registry);
    let (got, all, code) =
        fail(&format!("FROM {b}\nRUN --mount=type=bind,from={r}/never-pushed:1,target=/x true\n"), &[]);
    assert!(
        got.starts_with(&format!("Dockerfile:2: RUN --mount=type=bind,from={r}/never-pushed:1,target=/x true: "))
            && got.contains("never-pushed"),
        "{all}"
    );
    assert_eq!(code, 1);
    assert_fails(
        &format!(
            "FROM {b} AS build\nRUN mkdir /out\nFROM {b}\nRUN --mount=type=bind,from=build,source=/nope,target=/x true\n"
        ),
        &[],
        "Dockerfile:4: RUN --mount=type=bind,from=build,source=/nope,target=/x true: mount source /nope not found in \
         stage build",
        1,
    );
}
