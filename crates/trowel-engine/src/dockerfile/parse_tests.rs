use super::*;
use crate::dockerfile::types::Flag;

fn df(text: &str) -> Dockerfile {
    parse(Path::new("Dockerfile"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse(Path::new("bad/Dockerfile"), text).expect_err("should fail").to_string()
}

/// The kinds of the first stage's body.
fn body(text: &str) -> Vec<InstructionKind> {
    df(text).stages[0].instructions.iter().map(|i| i.kind.clone()).collect()
}

fn one(text: &str) -> InstructionKind {
    let mut b = body(&format!("FROM scratch\n{text}\n"));
    assert_eq!(b.len(), 1, "{text}");
    b.remove(0)
}

fn flag(name: &str, value: &str) -> Flag {
    Flag { name: name.into(), value: Some(value.into()) }
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn stages_and_global_args() {
    let d = df(
        "# syntax=docker/dockerfile:1.7\nARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-1} AS Build\nRUN make\n\nfrom scratch\ncopy --from=build /out /\n",
    );
    assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(d.escape, '\\');
    assert_eq!(d.global_args.len(), 2);
    assert_eq!(d.global_args[0].kind, InstructionKind::Arg(vec![(s("BASE"), Some(s("busybox")))]));
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(
        d.stages[0].from.kind,
        InstructionKind::From { image: s("${BASE}:${TAG:-1}"), platform: None, alias: Some(s("Build")) }
    );
    assert_eq!(d.stages[1].index, 1);
    assert_eq!(d.stages[1].name, None);
    assert_eq!(d.stages[1].from.keyword(), Keyword::From);
    assert_eq!(d.stages[1].instructions[0].keyword(), Keyword::Copy);
    assert_eq!(d.stages[1].instructions[0].line, 8);
    assert_eq!(d.stage_by_name("BUILD").map(|s| s.index), Some(0));
    assert_eq!(d.instruction_at_line(5).map(|i| i.keyword()), Some(Keyword::Run));
    assert_eq!(d.instructions().count(), 6);
}

#[test]
fn from_with_platform() {
    let d = df("FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n");
    assert_eq!(
        d.stages[0].from.kind,
        InstructionKind::From { image: s("golang:1.22"), platform: Some(s("$BUILDPLATFORM")), alias: Some(s("build")) }
    );
}

#[test]
fn run_forms() {
    assert_eq!(
        one("RUN echo hi"),
        InstructionKind::Run { flags: vec![], command: CommandForm::Shell(s("echo hi")), heredocs: vec![] }
    );
    assert_eq!(
        one("RUN [\"echo\", \"hi there\"]"),
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Exec(vec![s("echo"), s("hi there")]),
            heredocs: vec![]
        }
    );
    assert_eq!(
        one("RUN --mount=type=cache,target=/root/.cache --network=none [\"make\"]"),
        InstructionKind::Run {
            flags: vec![flag("mount", "type=cache,target=/root/.cache"), flag("network", "none")],
            command: CommandForm::Exec(vec![s("make")]),
            heredocs: vec![]
        }
    );
    // Not valid JSON: shell form, as Docker does.
    assert_eq!(
        one("RUN [ -f /etc/passwd ] && echo ok"),
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("[ -f /etc/passwd ] && echo ok")),
            heredocs: vec![]
        }
    );
}

#[test]
fn continuation_with_comments_and_empty_lines() {
    let text = "FROM scratch\nRUN apt-get update && \\\n    # refresh first\n    apt-get install -y \\\n\n      curl\nUSER app\n";
    let d = df(text);
    let run = &d.stages[0].instructions[0];
    assert_eq!(
        run.kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("apt-get update &&     apt-get install -y       curl")),
            heredocs: vec![]
        }
    );
    assert_eq!((run.line, run.end_line), (2, 6));
    assert_eq!(run.source, "RUN apt-get update && \\\n    # refresh first\n    apt-get install -y \\\n\n      curl");
    assert_eq!(d.stages[0].instructions[1].line, 7);
}

#[test]
fn run_heredocs() {
    let text = "FROM scratch\nRUN <<EOF\necho one\necho two\nEOF\nRUN python3 <<'PY'\nprint(1)\nPY\nRUN cat <<A >a && cat <<-\"B\" >b\nalpha\nA\n\tbeta\n\tB\nRUN done\n";
    let d = df(text);
    let b = &d.stages[0].instructions;
    assert_eq!(b.len(), 4);
    assert_eq!(
        b[0].kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("<<EOF")),
            heredocs: vec![Heredoc {
                delimiter: s("EOF"),
                content: s("echo one\necho two\n"),
                expand: true,
                strip_tabs: false
            }]
        }
    );
    assert_eq!((b[0].line, b[0].end_line), (2, 5));
    assert_eq!(b[0].source, "RUN <<EOF\necho one\necho two\nEOF");
    assert_eq!(
        b[1].kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("python3 <<'PY'")),
            heredocs: vec![Heredoc { delimiter: s("PY"), content: s("print(1)\n"), expand: false, strip_tabs: false }]
        }
    );
    let InstructionKind::Run { command, heredocs, .. } = &b[2].kind else { panic!() };
    assert_eq!(command, &CommandForm::Shell(s("cat <<A >a && cat <<-\"B\" >b")));
    assert_eq!(heredocs.len(), 2);
    assert_eq!(heredocs[1], Heredoc { delimiter: s("B"), content: s("\tbeta\n"), expand: false, strip_tabs: true });
    assert_eq!((b[2].line, b[2].end_line), (9, 13));
    assert_eq!(b[3].line, 14);
}

#[test]
fn copy_and_add() {
    assert_eq!(
        one("COPY --from=build --chown=app:app --chmod=0755 --link src/ other /app/"),
        InstructionKind::Copy(CopyArgs {
            flags: vec![
                flag("from", "build"),
                flag("chown", "app:app"),
                flag("chmod", "0755"),
                Flag { name: s("link"), value: None }
            ],
            sources: vec![CopySource::Path(s("src/")), CopySource::Path(s("other"))],
            dest: s("/app/"),
        })
    );
    assert_eq!(
        one("COPY [\"with space\", \"/dst dir/\"]"),
        InstructionKind::Copy(CopyArgs {
            flags: vec![],
            sources: vec![CopySource::Path(s("with space"))],
            dest: s("/dst dir/")
        })
    );
    assert_eq!(
        one(
            "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tgz /a.tgz"
        ),
        InstructionKind::Add(CopyArgs {
            flags: vec![flag("checksum", "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d")],
            sources: vec![CopySource::Path(s("https://example.com/a.tgz"))],
            dest: s("/a.tgz")
        })
    );
}

#[test]
fn copy_heredocs() {
    let k = body("FROM scratch\nCOPY <<A <<-\"B\" src /dst/\nhello $X\nA\n\tworld\n\tB\n");
    assert_eq!(
        k[0],
        InstructionKind::Copy(CopyArgs {
            flags: vec![],
            sources: vec![
                CopySource::Heredoc(Heredoc {
                    delimiter: s("A"),
                    content: s("hello $X\n"),
                    expand: true,
                    strip_tabs: false
                }),
                CopySource::Heredoc(Heredoc {
                    delimiter: s("B"),
                    content: s("\tworld\n"),
                    expand: false,
                    strip_tabs: true
                }),
                CopySource::Path(s("src")),
            ],
            dest: s("/dst/"),
        })
    );
}

#[test]
fn env_label_arg_pairs() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C= D=a\\ b"),
        InstructionKind::Env(vec![
            (s("A"), s("1")),
            (s("B"), s("\"two words\"")),
            (s("C"), s("")),
            (s("D"), s("a\\ b"))
        ])
    );
    assert_eq!(
        one("ENV PATH /opt/bin:$PATH and more"),
        InstructionKind::Env(vec![(s("PATH"), s("/opt/bin:$PATH and more"))])
    );
    assert_eq!(
        one("LABEL org.opencontainers.image.title=\"trowel test\" \"x y\"=z"),
        InstructionKind::Label(vec![
            (s("org.opencontainers.image.title"), s("\"trowel test\"")),
            (s("\"x y\""), s("z"))
        ])
    );
    assert_eq!(
        one("ARG A B=2 C=\"x y\""),
        InstructionKind::Arg(vec![(s("A"), None), (s("B"), Some(s("2"))), (s("C"), Some(s("\"x y\"")))])
    );
}

/// BuildKit's parser reads a JSON array only when the whole rest of the line is one
/// (`json.Unmarshal`, since moby/buildkit 80518e2, 2024): anything after the `]` — a `#`
/// "comment" included, which is no comment there — makes it the shell form. (Older Docker,
/// kaniko and buildah read the first array and dropped the rest.) BuildKit's own test:
/// `ENTRYPOINT []random string` gives `["/bin/sh", "-c", "[]random string"]`.
#[test]
fn text_after_a_json_array_makes_the_shell_form() {
    assert_eq!(
        one("ENTRYPOINT [\"myentrypoint\"] # This should clear out CMD"),
        InstructionKind::Entrypoint(CommandForm::Shell(s("[\"myentrypoint\"] # This should clear out CMD")))
    );
    assert_eq!(
        one("ENTRYPOINT []random string"),
        InstructionKind::Entrypoint(CommandForm::Shell(s("[]random string")))
    );
    assert_eq!(one("CMD [\"a\"]  b"), InstructionKind::Cmd(CommandForm::Shell(s("[\"a\"]  b"))));
    assert_eq!(
        one("RUN [\"echo\", \"hello\"]this is invalid"),
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("[\"echo\", \"hello\"]this is invalid")),
            heredocs: vec![]
        }
    );
    // Trailing blanks are not text: still the exec form.
    assert_eq!(one("CMD [\"a\"]   "), InstructionKind::Cmd(CommandForm::Exec(vec![s("a")])));
    // SHELL has no shell form to fall back to.
    assert_eq!(
        err("FROM scratch\nSHELL [\"/bin/sh\", \"-c\"] # x\n"),
        "bad/Dockerfile:2: SHELL [\"/bin/sh\", \"-c\"] # x: SHELL requires the arguments to be in JSON form"
    );
}

#[test]
fn simple_instructions() {
    assert_eq!(
        one("CMD [\"serve\", \"--port\", \"80\"]"),
        InstructionKind::Cmd(CommandForm::Exec(vec![s("serve"), s("--port"), s("80")]))
    );
    assert_eq!(one("CMD echo $HOME"), InstructionKind::Cmd(CommandForm::Shell(s("echo $HOME"))));
    assert_eq!(one("ENTRYPOINT []"), InstructionKind::Entrypoint(CommandForm::Exec(vec![])));
    assert_eq!(one("CMD []"), InstructionKind::Cmd(CommandForm::Exec(vec![])));
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]"),
        InstructionKind::Shell(vec![s("/bin/bash"), s("-o"), s("pipefail"), s("-c")])
    );
    assert_eq!(one("EXPOSE 80 443/tcp ${PORT}"), InstructionKind::Expose(vec![s("80"), s("443/tcp"), s("${PORT}")]));
    assert_eq!(one("VOLUME /data /logs"), InstructionKind::Volume(vec![s("/data"), s("/logs")]));
    assert_eq!(one("VOLUME [\"/data\"]"), InstructionKind::Volume(vec![s("/data")]));
    assert_eq!(one("USER app:app"), InstructionKind::User(s("app:app")));
    assert_eq!(one("WORKDIR /srv/${APP}"), InstructionKind::Workdir(s("/srv/${APP}")));
    assert_eq!(one("STOPSIGNAL SIGINT"), InstructionKind::Stopsignal(s("SIGINT")));
    assert_eq!(
        one("MAINTAINER Jane Doe <jane@example.com>"),
        InstructionKind::Maintainer(s("Jane Doe <jane@example.com>"))
    );
}

#[test]
fn healthcheck() {
    assert_eq!(one("HEALTHCHECK NONE"), InstructionKind::Healthcheck { flags: vec![], command: None });
    assert_eq!(
        one("HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/ || exit 1"),
        InstructionKind::Healthcheck {
            flags: vec![flag("interval", "30s"), flag("retries", "3")],
            command: Some(CommandForm::Shell(s("curl -f http://localhost/ || exit 1")))
        }
    );
    assert_eq!(
        one("healthcheck cmd [\"/bin/check\"]"),
        InstructionKind::Healthcheck { flags: vec![], command: Some(CommandForm::Exec(vec![s("/bin/check")])) }
    );
}

#[test]
fn onbuild() {
    let text = "FROM scratch\nONBUILD COPY . /app\nONBUILD RUN <<EOF\necho hi\nEOF\n";
    let d = df(text);
    let b = &d.stages[0].instructions;
    let InstructionKind::Onbuild(trigger) = &b[0].kind else { panic!("{:?}", b[0].kind) };
    assert_eq!(trigger.keyword(), Keyword::Copy);
    assert_eq!(trigger.source, "COPY . /app");
    assert_eq!(
        trigger.kind,
        InstructionKind::Copy(CopyArgs { flags: vec![], sources: vec![CopySource::Path(s("."))], dest: s("/app") })
    );
    let InstructionKind::Onbuild(trigger) = &b[1].kind else { panic!() };
    assert_eq!(trigger.source, "RUN <<EOF\necho hi\nEOF");
    assert_eq!((b[1].line, b[1].end_line), (3, 5));
    assert!(matches!(&trigger.kind, InstructionKind::Run { heredocs, .. } if heredocs.len() == 1));
}

#[test]
fn lower_case_keywords_and_crlf() {
    let d = df("from busybox as base\r\nrun echo a \\\r\n  b\r\nenv A=1\r\n");
    let b = &d.stages[0].instructions;
    assert_eq!(b[0].keyword(), Keyword::Run);
    assert_eq!(
        b[0].kind,
        InstructionKind::Run { flags: vec![], command: CommandForm::Shell(s("echo a   b")), heredocs: vec![] }
    );
    assert_eq!(b[0].source, "run echo a \\\r\n  b");
    assert_eq!(b[1].kind, InstructionKind::Env(vec![(s("A"), s("1"))]));
}

#[test]
fn backtick_escape_directive() {
    let d = df("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n  && echo done\nCOPY a.txt C:\\app\\\n");
    assert_eq!(d.escape, '`');
    let b = &d.stages[0].instructions;
    assert_eq!(
        b[0].kind,
        InstructionKind::Run {
            flags: vec![],
            command: CommandForm::Shell(s("dir C:\\   && echo done")),
            heredocs: vec![]
        }
    );
    assert_eq!(
        b[1].kind,
        InstructionKind::Copy(CopyArgs {
            flags: vec![],
            sources: vec![CopySource::Path(s("a.txt"))],
            dest: s("C:\\app\\")
        })
    );
}

#[test]
fn instruction_line_for_triggers() {
    let i = parse_instruction_line(Path::new("<onbuild>"), "RUN echo hi").unwrap();
    assert_eq!(i.keyword(), Keyword::Run);
    assert_eq!((i.line, i.end_line), (1, 1));
    let i = parse_instruction_line(Path::new("<onbuild>"), "COPY <<EOF /x\nhello\nEOF").unwrap();
    assert!(
        matches!(&i.kind, InstructionKind::Copy(c) if matches!(&c.sources[0], CopySource::Heredoc(h) if h.content == "hello\n"))
    );
    let e = parse_instruction_line(Path::new("<onbuild>"), "FROM x").unwrap_err();
    assert_eq!(e.to_string(), "<onbuild>:1: FROM x: FROM isn't allowed as an ONBUILD trigger");
    let e = parse_instruction_line(Path::new("<onbuild>"), "RUN a\nRUN b").unwrap_err();
    assert_eq!(e.to_string(), "<onbuild>:1: an ONBUILD trigger must be exactly one instruction");
}

#[test]
fn error_messages() {
    assert_eq!(err("FROM busybox\n\nFROOM busybox\n"), "bad/Dockerfile:3: FROOM busybox: unknown instruction FROOM");
    assert_eq!(err("FROM busybox\nRUN\n"), "bad/Dockerfile:2: RUN: RUN requires at least one argument");
    assert_eq!(
        err("FROM busybox\nRUN --mount=type=cache,target=/x \\\n\n"),
        "bad/Dockerfile:2: RUN --mount=type=cache,target=/x: RUN requires at least one argument"
    );
    assert_eq!(
        err("FROM busybox\nCOPY onlyone\n"),
        "bad/Dockerfile:2: COPY onlyone: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        err("FROM busybox\nCOPY --chekcsum=x a b\n"),
        "bad/Dockerfile:2: COPY --chekcsum=x a b: unknown flag: --chekcsum (COPY accepts --from, --chown, --chmod, --link, --parents, --exclude)"
    );
    assert_eq!(
        err("FROM busybox\nCOPY --chmod=999 a b\n"),
        "bad/Dockerfile:2: COPY --chmod=999 a b: invalid --chmod value \"999\": an octal mode must be between 0 and 7777"
    );
    assert_eq!(
        err("FROM busybox\nHEALTHCHECK --interval=5s NONE\n"),
        "bad/Dockerfile:2: HEALTHCHECK --interval=5s NONE: HEALTHCHECK NONE takes no flags"
    );
    assert_eq!(
        err("FROM busybox\nHEALTHCHECK --interval=5 CMD true\n"),
        "bad/Dockerfile:2: HEALTHCHECK --interval=5 CMD true: --interval: invalid duration \"5\": missing unit (one of ns, us, ms, s, m, h)"
    );
    assert_eq!(
        err("FROM busybox\nHEALTHCHECK CHECK true\n"),
        "bad/Dockerfile:2: HEALTHCHECK CHECK true: Unknown type \"CHECK\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        err("FROM busybox\nHEALTHCHECK NONE now\n"),
        "bad/Dockerfile:2: HEALTHCHECK NONE now: HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("FROM busybox\nHEALTHCHECK CMD\n"),
        "bad/Dockerfile:2: HEALTHCHECK CMD: Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("FROM busybox\nONBUILD ONBUILD RUN x\n"),
        "bad/Dockerfile:2: ONBUILD ONBUILD RUN x: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("FROM busybox\nONBUILD FROM alpine\n"),
        "bad/Dockerfile:2: ONBUILD FROM alpine: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("FROM busybox\nONBUILD maintainer me\n"),
        "bad/Dockerfile:2: ONBUILD maintainer me: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(err("FROM a b\n"), "bad/Dockerfile:1: FROM a b: FROM requires either one or three arguments");
    assert_eq!(
        err("FROM a AS 1st\n"),
        "bad/Dockerfile:1: FROM a AS 1st: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        err("RUN x\nFROM a\n"),
        "bad/Dockerfile:1: RUN x: no build stage in current context: only ARG instructions may come before the first FROM"
    );
    assert_eq!(err("ARG A\n"), "bad/Dockerfile: dockerfile contains no stages to build (no FROM instruction)");
    assert_eq!(err("# just a comment\n\n"), "bad/Dockerfile:2: file with no instructions");
    assert_eq!(
        err("FROM a\nSHELL /bin/sh -c\n"),
        "bad/Dockerfile:2: SHELL /bin/sh -c: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        err("FROM a\nCMD [\"a\", 1]\n"),
        "bad/Dockerfile:2: CMD [\"a\", 1]: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        err("FROM a\nENV A=1 B\n"),
        "bad/Dockerfile:2: ENV A=1 B: Syntax error - can't find = in \"B\". Must be of the form: name=value"
    );
    assert_eq!(err("FROM a\nENV ONLY\n"), "bad/Dockerfile:2: ENV ONLY: ENV must have two arguments");
    assert_eq!(err("FROM a\nUSER\n"), "bad/Dockerfile:2: USER: USER requires exactly one argument");
    assert_eq!(
        err("FROM a\nENV --x=1 A=b\n"),
        "bad/Dockerfile:2: ENV --x=1 A=b: unknown flag: --x (ENV accepts no flags)"
    );
    assert_eq!(
        err("FROM a\nCOPY --link=maybe a b\n"),
        "bad/Dockerfile:2: COPY --link=maybe a b: expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        err("FROM a\nCOPY --from=x --from=y a b\n"),
        "bad/Dockerfile:2: COPY --from=x --from=y a b: duplicate flag specified: --from"
    );
    assert_eq!(
        err("FROM a\nCOPY a <<EOF\nx\nEOF\n"),
        "bad/Dockerfile:2: COPY a <<EOF: COPY cannot accept a heredoc as a destination"
    );
    assert_eq!(err("FROM a\nRUN <<EOF\nnever ends\n"), "bad/Dockerfile:2: RUN <<EOF: unterminated heredoc EOF");
    assert_eq!(err("# escape=x\nFROM a\n"), "bad/Dockerfile:1: invalid escape token 'x' does not match ` or \\");
    assert_eq!(err("FROM a\n\n \nRUN [] \n"), "bad/Dockerfile:4: RUN []: RUN requires at least one argument");
    // A continuation swallows the next non-blank line, even one that looks like an instruction.
    let d = df("FROM a\nRUN [\"a\"] \\\n\n \nRUN []\n");
    assert_eq!(d.stages[0].instructions.len(), 1);
    assert_eq!(d.stages[0].instructions[0].end_line, 5);
}

#[test]
fn serde_round_trip() {
    let d = df("FROM busybox AS b\nONBUILD RUN echo hi\nCOPY <<EOF /x\nhi\nEOF\nHEALTHCHECK NONE\n");
    let json = serde_json::to_string(&d).unwrap();
    let back: Dockerfile = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    let from = serde_json::to_string(&d.stages[0].from).unwrap();
    assert_eq!(serde_json::from_str::<Instruction>(&from).unwrap().keyword(), Keyword::From);
    // Keywords are written as Dockerfiles write them, and only known ones read back.
    assert_eq!(serde_json::to_string(&Keyword::Healthcheck).unwrap(), "\"HEALTHCHECK\"");
    assert!(serde_json::from_str::<Keyword>("\"NOPE\"").is_err());
    for k in Keyword::ALL {
        assert_eq!(Keyword::parse(&k.as_str().to_lowercase()), Some(k));
    }
}

#[test]
fn how_it_was_written_is_kept_beside_what_it_says() {
    let df = parse(Path::new("Dockerfile"), "from scratch As Base\nEnv A 1\nLABEL b=2\nonbuild Run x\n").unwrap();
    let from = &df.stages[0].from;
    assert_eq!((from.written.keyword.as_str(), from.written.as_word.as_deref()), ("from", Some("As")));
    let env = &df.stages[0].instructions[0];
    assert_eq!(env.written.keyword, "Env");
    assert!(env.written.legacy_key_value);
    assert!(!df.stages[0].instructions[1].written.legacy_key_value);
    let InstructionKind::Onbuild(trigger) = &df.stages[0].instructions[2].kind else { panic!() };
    assert_eq!(trigger.written.keyword, "Run");
    // Duplicate stage names parse, as in BuildKit (which warns: DuplicateStageName); a name
    // is the last stage of it.
    let text = "FROM scratch AS a\nFROM scratch AS A\n";
    let df = parse(Path::new("Dockerfile"), text).unwrap();
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.stage_by_name("a").map(|s| s.index), Some(1));
}
