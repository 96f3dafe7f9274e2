//! Parses the real-world style Dockerfiles under `testdata/dockerfile/`, plans their stages and
//! expands their instructions; checks the invalid ones under `testdata/dockerfile/bad/` fail with
//! the exact message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use trowel_engine::dockerfile::{
    ArgScope, Base, CommandForm, CopySource, Dockerfile, Expanded, ExpandedSource, Instruction, InstructionKind,
    NoVars, PlatformArgs, RunScript, StageOrImage, parse, parse_instruction_line, plan,
};
use trowel_engine::image::manifest::Platform;

/// The fixture's path as tests name it (relative, so messages are stable).
fn rel(name: &str) -> PathBuf {
    Path::new("testdata/dockerfile").join(name)
}

fn load(name: &str) -> Dockerfile {
    let path = rel(name);
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
    parse(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn platforms() -> PlatformArgs {
    PlatformArgs { target: Platform::parse("linux/arm64").unwrap(), build: Platform::parse("linux/amd64").unwrap() }
}

/// Executes a stage's ARG and ENV instructions the way the engine would, returning the
/// variables visible at each instruction (by index).
fn run_vars(df: &Dockerfile, stage: usize, scope: &mut ArgScope) -> Vec<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    let mut seen = Vec::new();
    for instruction in &df.stages[stage].instructions {
        seen.push(env.clone());
        match &instruction.kind {
            InstructionKind::Arg(_) => {
                for (k, v) in scope.apply(instruction, &env, df.escape).unwrap() {
                    if let Some(v) = v {
                        env.insert(k, v);
                    }
                }
            }
            InstructionKind::Env(_) => {
                let Expanded::Env(pairs) = instruction.expand(&env, df.escape).unwrap() else { unreachable!() };
                env.extend(pairs);
            }
            _ => {}
        }
    }
    seen
}

fn find(df: &Dockerfile, stage: usize, line: usize) -> &Instruction {
    df.stages[stage]
        .instructions
        .iter()
        .find(|i| i.line == line)
        .unwrap_or_else(|| panic!("no instruction at line {line}"))
}

#[test]
fn go_multistage() {
    let df = load("go-multistage.Dockerfile");
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(df.global_args.len(), 2);
    assert_eq!(df.stages.iter().map(|s| s.name.as_deref()).collect::<Vec<_>>(), [Some("build"), Some("test"), None]);

    let p = plan(&df, None, &BTreeMap::new(), &platforms()).unwrap();
    assert_eq!(p.order, [0, 2]);
    assert!(!p.stages[1].needed);
    assert_eq!(p.stages[0].base, Base::Image("golang:1.22-bookworm".into()));
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[2].base, Base::Image("gcr.io/distroless/static-debian12:nonroot".into()));
    assert_eq!(p.stages[2].copy_from, [StageOrImage::Stage(0)]);

    let p_test =
        plan(&df, Some("test"), &[("GO_VERSION".to_string(), "1.23".to_string())].into(), &platforms()).unwrap();
    assert_eq!(p_test.order, [0, 1]);
    assert_eq!(p_test.stages[0].base, Base::Image("golang:1.23-bookworm".into()));

    let mut scope = p.arg_scope();
    let vars = run_vars(&df, 0, &mut scope);
    assert_eq!(scope.value("TARGETARCH"), Some("arm64"));
    assert_eq!(scope.value("TARGETOS"), Some("linux"));

    let env = find(&df, 0, 10);
    assert_eq!((env.line, env.end_line), (10, 11));
    let Expanded::Env(pairs) = env.expand(&vars[2], df.escape).unwrap() else { panic!() };
    assert_eq!(pairs, [("CGO_ENABLED".into(), "0".into()), ("GOFLAGS".into(), "-trimpath -mod=readonly".into())]);

    let build = find(&df, 0, 16);
    assert_eq!(build.end_line, 19);
    let InstructionKind::Run { flags, command, .. } = &build.kind else { panic!() };
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[1].value.as_deref(), Some("type=cache,target=/root/.cache/go-build"));
    assert_eq!(
        command,
        &CommandForm::Shell(
            "GOOS=$TARGETOS GOARCH=$TARGETARCH     go build -ldflags=\"-s -w\" -o /out/server ./cmd/server".into()
        )
    );

    let copy = find(&df, 2, 27);
    let expanded = copy.expand(&NoVars, df.escape).unwrap();
    assert_eq!(expanded.display(), "COPY --from=build --chmod=0755 /out/server /usr/local/bin/server");
    let label = find(&df, 2, 25);
    assert_eq!(
        label.expand(&NoVars, df.escape).unwrap(),
        Expanded::Label(vec![
            ("org.opencontainers.image.source".into(), "https://example.com/server".into()),
            ("org.opencontainers.image.licenses".into(), "Apache-2.0".into())
        ])
    );
    assert_eq!(
        find(&df, 2, 29).expand(&NoVars, df.escape).unwrap(),
        Expanded::Expose(vec!["8080/tcp".into(), "9090/tcp".into()])
    );
    assert_eq!(
        find(&df, 2, 30).kind,
        InstructionKind::Entrypoint(CommandForm::Exec(vec!["/usr/local/bin/server".into()]))
    );
}

#[test]
fn node_app() {
    let df = load("node-app.Dockerfile");
    let body = &df.stages[0].instructions;
    assert_eq!(
        body[0].expand(&NoVars, df.escape).unwrap(),
        Expanded::Env(vec![("NODE_ENV".into(), "production".into())])
    );
    let hc = df.instruction_at_line(14).unwrap();
    assert_eq!((hc.keyword().as_str(), hc.line, hc.end_line), ("HEALTHCHECK", 13, 14));
    let Expanded::Healthcheck(Some(h)) = hc.expand(&NoVars, df.escape).unwrap() else { panic!() };
    assert_eq!(h.test, ["CMD-SHELL", "wget -qO- http://127.0.0.1:3000/healthz || exit 1"]);
    assert_eq!(
        (h.interval_ns, h.timeout_ns, h.start_period_ns, h.retries),
        (Some(30_000_000_000), Some(3_000_000_000), Some(10_000_000_000), Some(3))
    );
    assert_eq!(
        hc.expand(&NoVars, df.escape).unwrap().display(),
        "HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 CMD [\"CMD-SHELL\",\"wget -qO- http://127.0.0.1:3000/healthz || exit 1\"]"
    );
    let run = df.instruction_at_line(8).unwrap();
    assert_eq!(
        run.expand(&NoVars, df.escape).unwrap(),
        Expanded::Run {
            flags: vec![],
            script: RunScript::Shell("npm ci --omit=dev  && npm cache clean --force".into())
        }
    );
    assert_eq!(
        df.instruction_at_line(15).unwrap().expand(&NoVars, df.escape).unwrap(),
        Expanded::Stopsignal("SIGTERM".into())
    );
}

#[test]
fn heredocs() {
    let df = load("heredocs.Dockerfile");
    let p = plan(&df, None, &BTreeMap::new(), &platforms()).unwrap();
    let mut scope = p.arg_scope();
    let vars = run_vars(&df, 0, &mut scope);
    let body = &df.stages[0].instructions;
    let ex = |i: usize| body[i].expand(&vars[i], df.escape).unwrap();

    assert_eq!((body[1].line, body[1].end_line), (5, 10));
    assert_eq!(ex(1), Expanded::Run {
        flags: vec![],
        script: RunScript::Script {
            content: "set -eu\napt-get update\napt-get install -y --no-install-recommends curl\nrm -rf /var/lib/apt/lists/*\n"
                .into(),
            shebang: false
        }
    });
    let Expanded::Copy(config) = ex(2) else { panic!() };
    assert_eq!(
        config.sources,
        [ExpandedSource::Heredoc { name: "EOF".into(), content: "greeting = \"hello\"\nhome = \"\"\n".into() }]
    );
    assert_eq!(config.dest, "/etc/app/config.toml");
    let Expanded::Copy(two) = ex(3) else { panic!() };
    assert_eq!(
        two.sources,
        [
            ExpandedSource::Heredoc { name: "RAW".into(), content: "literal ${GREETING}\n".into() },
            ExpandedSource::Heredoc { name: "INDENTED".into(), content: "indented hello\n".into() },
        ]
    );
    assert_eq!((body[3].line, body[3].end_line), (17, 21));
    assert_eq!(
        ex(4),
        Expanded::Run {
            flags: vec![],
            script: RunScript::Shell("python3 <<PY\nimport sys\nprint(\"python\", sys.version_info[:2])\nPY".into())
        }
    );
    assert_eq!(
        ex(5),
        Expanded::Run {
            flags: vec![],
            script: RunScript::Shell(
                "cat <<A >/tmp/a && cat <<-\"B\" >/tmp/b\nfirst $GREETING\nA\n\tsecond $GREETING\nB".into()
            )
        }
    );
    assert_eq!((body[5].line, body[5].end_line), (28, 32));
    assert_eq!(
        ex(6),
        Expanded::Run {
            flags: vec![],
            script: RunScript::Script {
                content: "#!/usr/bin/env python3\nprint(\"runs as a script\")\n".into(),
                shebang: true
            }
        }
    );
    assert_eq!(body[7].line, 39);
}

#[test]
fn debian_continuations() {
    let df = load("debian-continuations.Dockerfile");
    let body = &df.stages[0].instructions;
    assert_eq!(
        body[0].expand(&NoVars, df.escape).unwrap(),
        Expanded::Label(vec![
            ("maintainer".into(), "ops@example.com".into()),
            ("description".into(), "A Debian image with a multi-line description".into())
        ])
    );
    assert_eq!(
        body[1].kind,
        InstructionKind::Shell(vec!["/bin/bash".into(), "-o".into(), "pipefail".into(), "-c".into()])
    );
    assert_eq!(body[2].expand(&NoVars, df.escape).unwrap(), Expanded::Env(vec![("LANG".into(), "C.UTF-8".into())]));
    let base_env: BTreeMap<String, String> = [("PATH".to_string(), "/usr/bin:/bin".to_string())].into();
    assert_eq!(
        body[3].expand(&base_env, df.escape).unwrap(),
        Expanded::Env(vec![
            ("PATH".into(), "/opt/tools/bin:/usr/bin:/bin".into()),
            ("TOOLS_HOME".into(), "/opt/tools".into())
        ])
    );
    let run = &body[4];
    assert_eq!((run.line, run.end_line), (13, 23));
    assert_eq!(
        run.kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(
                "set -eux;     apt-get update;     apt-get install -y --no-install-recommends         ca-certificates         curl         procps     ;     rm -rf /var/lib/apt/lists/*".into()
            ),
            heredocs: vec![]
        }
    );
    assert_eq!(body[5].kind, InstructionKind::Volume(vec!["/var/lib/data".into(), "/var/log/app".into()]));
    let tools: BTreeMap<String, String> = [("TOOLS_HOME".to_string(), "/opt/tools".to_string())].into();
    assert_eq!(body[6].expand(&tools, df.escape).unwrap(), Expanded::Workdir("/opt/tools".into()));
    assert_eq!(
        body[7].expand(&NoVars, df.escape).unwrap().display(),
        "ADD --chmod=0644 https://example.com/tool.tar.gz /opt/tools/"
    );
    let Expanded::Add(add) = body[8].expand(&NoVars, df.escape).unwrap() else { panic!() };
    assert!(add.keep_git_dir);
    assert_eq!(body[9].kind, InstructionKind::Entrypoint(CommandForm::Exec(vec!["/usr/bin/tini".into(), "--".into()])));
}

#[test]
fn windows_escape() {
    let df = load("windows-escape.Dockerfile");
    assert_eq!(df.escape, '`');
    let body = &df.stages[0].instructions;
    assert_eq!(body[1].expand(&NoVars, df.escape).unwrap(), Expanded::Workdir("C:\\app".into()));
    let Expanded::Copy(copy) = body[2].expand(&NoVars, df.escape).unwrap() else { panic!() };
    assert_eq!(copy.dest, "C:\\app\\");
    assert_eq!(
        body[3].kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(
                "Write-Host 'installing';     New-Item -ItemType Directory -Path C:\\data | Out-Null".into()
            ),
            heredocs: vec![]
        }
    );
    assert_eq!(
        body[4].expand(&NoVars, df.escape).unwrap(),
        Expanded::Env(vec![("DATA_DIR".into(), "C:\\data".into()), ("LOG_DIR".into(), "C:\\logs".into())])
    );
    assert_eq!(
        body[5].kind,
        InstructionKind::Cmd(CommandForm::Exec(vec!["powershell".into(), "-File".into(), "C:\\app\\app.ps1".into()]))
    );
}

#[test]
fn onbuild_triggers_round_trip() {
    let df = load("onbuild-base.Dockerfile");
    let body = &df.stages[0].instructions;
    let triggers: Vec<String> = body
        .iter()
        .filter_map(|i| match i.expand(&NoVars, df.escape).unwrap() {
            Expanded::Onbuild(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        triggers,
        [
            "ARG APP_VERSION=dev",
            "COPY . /app/src",
            "RUN echo \"building ${APP_VERSION}\"     && ls /app/src",
            "RUN <<EOF\necho from a heredoc trigger\nEOF",
        ]
    );
    // What goes into the image config parses back to the same instruction in a child build.
    for (trigger, instruction) in triggers.iter().zip(body) {
        let InstructionKind::Onbuild(inner) = &instruction.kind else { panic!() };
        let reparsed = parse_instruction_line(Path::new("<onbuild>"), trigger).unwrap();
        assert_eq!(reparsed.kind, inner.kind);
        assert_eq!(reparsed.keyword(), inner.keyword());
    }
    assert_eq!(body[4].kind, InstructionKind::Maintainer("Jane Doe <jane@example.com>".into()));
}

#[test]
fn crlf_line_endings() {
    let df = load("crlf.Dockerfile");
    let body = &df.stages[0].instructions;
    assert_eq!(
        body[0].kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell("echo one     two".into()),
            heredocs: vec![]
        }
    );
    assert_eq!((body[0].line, body[0].end_line), (2, 3));
    let InstructionKind::Copy(copy) = &body[1].kind else { panic!() };
    let CopySource::Heredoc(doc) = &copy.sources[0] else { panic!() };
    assert_eq!(doc.content, "line\r\n");
    assert_eq!(body[2].kind, InstructionKind::Cmd(CommandForm::Exec(vec!["sh".into()])));
}

#[test]
fn invalid_dockerfiles() {
    let cases = [
        ("unknown-instruction", "3: FROOM busybox: unknown instruction FROOM"),
        ("bare-run", "4: RUN: RUN requires at least one argument"),
        ("onbuild-from", "2: ONBUILD FROM alpine: FROM isn't allowed as an ONBUILD trigger"),
        ("onbuild-onbuild", "2: ONBUILD ONBUILD RUN true: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("unterminated-heredoc", "2: RUN <<EOF: unterminated heredoc EOF"),
        (
            "copy-one-arg",
            "2: COPY app: COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        ("healthcheck-none-flags", "2: HEALTHCHECK --retries=3 NONE: HEALTHCHECK NONE takes no flags"),
        (
            "unknown-flag",
            "2: RUN --mount=type=cache,target=/c --privileged make: unknown flag: --privileged (RUN accepts --mount, --network, --security)",
        ),
        (
            "instruction-before-from",
            "2: ENV A=b: no build stage in current context: only ARG instructions may come before the first FROM",
        ),
        ("bad-escape", "1: invalid escape token '|' does not match ` or \\"),
        (
            "bad-stage-name",
            "1: FROM busybox AS my/stage: invalid name for build stage: \"my/stage\", name can't start with a number or contain symbols",
        ),
    ];
    for (name, expected) in cases {
        let path = rel(&format!("bad/{name}.Dockerfile"));
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
        let e = parse(&path, &text).expect_err(name);
        assert_eq!(e.to_string(), format!("{}:{expected}", path.display()), "{name}");
    }
    // Every fixture in bad/ is covered above.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfile/bad");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), cases.len());
}

#[test]
fn every_fixture_parses_and_plans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/dockerfile");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("Dockerfile") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let df = load(name);
        let p = plan(&df, None, &BTreeMap::new(), &PlatformArgs::host()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.order.last(), Some(&(df.stages.len() - 1)), "{name}");
        // Spans cover the text: each instruction's source is exactly its lines of the file.
        let lines: Vec<&str> = df.text.lines().collect();
        for i in df.instructions() {
            assert_eq!(i.source.lines().count(), i.end_line - i.line + 1, "{name}:{}", i.line);
            assert_eq!(
                i.source.lines().next().unwrap().trim(),
                lines[i.line - 1].trim().trim_start_matches('\u{feff}'),
                "{name}"
            );
            assert!(lines[i.end_line - 1].ends_with(i.source.lines().last().unwrap()), "{name}:{}", i.end_line);
        }
        count += 1;
    }
    assert_eq!(count, 7);
}
