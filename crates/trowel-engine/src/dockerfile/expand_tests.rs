use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::dockerfile::parse;

fn vars() -> BTreeMap<String, String> {
    [("A", "1"), ("NAME", "app"), ("DIR", "/srv"), ("EMPTY", ""), ("PORTS", "80 443/udp"), ("MODE", "0640")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses `body` inside a stage and expands its only instruction.
fn ex(body: &str) -> Expanded {
    try_ex(body).unwrap_or_else(|e| panic!("{e}"))
}

fn try_ex(body: &str) -> Result<Expanded, DockerfileError> {
    ex_escape(body, '\\')
}

fn ex_escape(body: &str, escape: char) -> Result<Expanded, DockerfileError> {
    let header = if escape == '`' { "# escape=`\n" } else { "" };
    let d = parse::parse(Path::new("Dockerfile"), &format!("{header}FROM scratch\n{body}\n")).unwrap();
    d.stages[0].instructions[0].expand(&vars(), d.escape)
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn from_expands_with_global_args() {
    let d = parse::parse(Path::new("Dockerfile"), "ARG V=3.19\nFROM --platform=$P alpine:${V} AS base\n").unwrap();
    let globals: BTreeMap<String, String> = [(s("V"), s("3.20")), (s("P"), s("linux/arm64"))].into();
    assert_eq!(
        d.stages[0].from.expand(&globals, '\\').unwrap(),
        Expanded::From { image: s("alpine:3.20"), platform: Some(s("linux/arm64")), alias: Some(s("base")) }
    );
    let e = d.stages[0].from.expand(&NoVars, '\\').unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2: FROM --platform=$P alpine:${V} AS base: empty platform value from expression $P"
    );
    let d = parse::parse(Path::new("Dockerfile"), "FROM ${NOPE}\n").unwrap();
    let e = d.stages[0].from.expand(&NoVars, '\\').unwrap_err();
    assert_eq!(e.to_string(), "Dockerfile:1: FROM ${NOPE}: base name (${NOPE}) should not be blank");
}

#[test]
fn env_uses_values_from_before_the_instruction() {
    assert_eq!(
        ex("ENV A=2 B=$A C=\"${NAME} x\" D= E=a\\ b"),
        Expanded::Env(vec![
            (s("A"), s("2")),
            (s("B"), s("1")),
            (s("C"), s("app x")),
            (s("D"), s("")),
            (s("E"), s("a b"))
        ])
    );
    assert_eq!(ex("ENV PATH $DIR/bin:$PATH  x"), Expanded::Env(vec![(s("PATH"), s("/srv/bin:  x"))]));
    assert_eq!(ex("ENV ${NAME}_HOME=$DIR"), Expanded::Env(vec![(s("app_HOME"), s("/srv"))]));
    let e = try_ex("ENV ${EMPTY}=x").unwrap_err();
    assert_eq!(e.to_string(), "Dockerfile:2: ENV ${EMPTY}=x: ENV names can not be blank");
}

#[test]
fn arg_defaults_see_earlier_args_of_the_same_line() {
    assert_eq!(
        ex("ARG A=2 B=$A C D=${NAME}"),
        Expanded::Arg(vec![(s("A"), Some(s("2"))), (s("B"), Some(s("2"))), (s("C"), None), (s("D"), Some(s("app")))])
    );
}

#[test]
fn labels() {
    assert_eq!(
        ex("LABEL \"com.example.name\"=\"$NAME server\" version=$A"),
        Expanded::Label(vec![(s("com.example.name"), s("app server")), (s("version"), s("1"))])
    );
}

#[test]
fn run_is_not_expanded_except_mounts() {
    assert_eq!(
        ex("RUN --mount=type=cache,target=$DIR/cache --network=$NAME echo $NAME"),
        Expanded::Run {
            flags: vec![
                Flag { name: s("mount"), value: Some(s("type=cache,target=/srv/cache")) },
                Flag { name: s("network"), value: Some(s("$NAME")) }
            ],
            script: RunScript::Shell(s("echo $NAME"))
        }
    );
    assert_eq!(
        ex("RUN [\"echo\", \"$NAME\"]"),
        Expanded::Run { flags: vec![], script: RunScript::Exec(vec![s("echo"), s("$NAME")]) }
    );
    assert_eq!(ex("CMD echo $NAME"), Expanded::Cmd(CommandForm::Shell(s("echo $NAME"))));
    assert_eq!(ex("ENTRYPOINT [\"$NAME\"]"), Expanded::Entrypoint(CommandForm::Exec(vec![s("$NAME")])));
    assert_eq!(ex("SHELL [\"/bin/$NAME\"]"), Expanded::Shell(vec![s("/bin/$NAME")]));
}

#[test]
fn run_heredoc_scripts() {
    assert_eq!(
        ex("RUN <<EOF\necho $NAME\nEOF"),
        Expanded::Run { flags: vec![], script: RunScript::Script { content: s("echo $NAME\n"), shebang: false } }
    );
    assert_eq!(
        ex("RUN <<-EOF\n\t#!/usr/bin/env python3\n\tprint(1)\n\tEOF"),
        Expanded::Run {
            flags: vec![],
            script: RunScript::Script { content: s("#!/usr/bin/env python3\nprint(1)\n"), shebang: true }
        }
    );
    assert_eq!(
        ex("RUN python3 <<EOF\nprint($A)\nEOF"),
        Expanded::Run { flags: vec![], script: RunScript::Shell(s("python3 <<EOF\nprint($A)\nEOF")) }
    );
    assert_eq!(
        ex("RUN cat <<A >a && cat <<-'B' >b\n1\nA\n\t2\n\tB"),
        Expanded::Run { flags: vec![], script: RunScript::Shell(s("cat <<A >a && cat <<-'B' >b\n1\nA\n\t2\nB")) }
    );
    assert_eq!(
        ex("RUN <<EOF bash\necho hi\nEOF"),
        Expanded::Run { flags: vec![], script: RunScript::Shell(s("<<EOF bash\necho hi\nEOF")) }
    );
}

#[test]
fn copy_expansion() {
    let Expanded::Copy(c) =
        ex("COPY --from=$NAME --chown=$NAME:$NAME --chmod=$MODE --link --exclude=*.$A $DIR/a \"b\" ${DIR}/")
    else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("app"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0640"));
    assert!(c.link && !c.parents && !c.keep_git_dir);
    // BuildKit does not expand `--exclude` (`CopyCommand.Expand`).
    assert_eq!(c.excludes, [s("*.$A")]);
    assert_eq!(c.sources, [ExpandedSource::Path(s("/srv/a")), ExpandedSource::Path(s("b"))]);
    assert_eq!(c.dest, "/srv/");
    // Shell-form COPY splits on blanks before expanding, so quotes cannot protect a space (as
    // in Docker): `"b c"` is two words, each with an unterminated quote.
    assert!(try_ex("COPY \"b c\" /d").unwrap_err().to_string().contains("matching double-quote"));
    let Expanded::Add(a) = ex("ADD --keep-git-dir=true https://example.com/r.git#v$A /z") else { panic!() };
    assert!(a.keep_git_dir);
    assert_eq!(a.sources, [ExpandedSource::Path(s("https://example.com/r.git#v1"))]);
    // `--unpack` is ADD's only, and is in the rendering (so the key) only when given.
    assert_eq!(a.unpack, None);
    let e = ex("ADD --unpack=false a.tar.gz /z");
    assert_eq!(e.display(), "ADD --unpack=false a.tar.gz /z");
    let Expanded::Add(a) = e else { panic!() };
    assert_eq!(a.unpack, Some(false));
    let e = ex("ADD --unpack https://x/a.tgz /z");
    assert_eq!(e.display(), "ADD --unpack=true https://x/a.tgz /z");
    let Expanded::Add(a) = e else { panic!() };
    assert_eq!(a.unpack, Some(true));
    let e = parse::parse(Path::new("Dockerfile"), "FROM scratch\nCOPY --unpack a /z\n").unwrap_err();
    assert!(e.to_string().contains("unknown flag: --unpack"), "{e}");
}

#[test]
fn copy_flag_validation_after_expansion() {
    let e = try_ex("COPY --chmod=${NAME} a b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2: COPY --chmod=${NAME} a b: invalid --chmod value \"app\" (at \"pp\"): expected an octal mode such as 0755 or a symbolic one such as u=rwX,go=rX"
    );
    let e = try_ex("ADD --checksum=sha256:${NAME} https://x/y /z").unwrap_err();
    assert!(e.to_string().contains("invalid --checksum value \"sha256:app\""), "{e}");
    let e = try_ex("COPY --from=$EMPTY a b").unwrap_err();
    assert!(e.to_string().ends_with("--from must not be empty"));
    // A checksum that is empty, written so or expanded to nothing, is none (BuildKit acts on a
    // non-empty one only).
    assert!(try_ex("ADD --checksum=$EMPTY https://x/y /z").is_ok());
    assert!(try_ex("ADD --checksum= https://x/y /z").is_ok());
}

#[test]
fn copy_heredoc_bodies() {
    let Expanded::Copy(c) =
        ex("COPY <<A <<\"B\" <<-C /dst/\nhi \"$NAME\" '$A' \\$A\nA\nraw $NAME\nB\n\t\ttabbed $A\n\tC")
    else {
        panic!()
    };
    assert_eq!(
        c.sources,
        [
            ExpandedSource::Heredoc { name: s("A"), content: s("hi \"app\" '1' $A\n") },
            ExpandedSource::Heredoc { name: s("B"), content: s("raw $NAME\n") },
            ExpandedSource::Heredoc { name: s("C"), content: s("tabbed 1\n") },
        ]
    );
}

#[test]
fn expose_normalises() {
    assert_eq!(
        ex("EXPOSE 8080 53/UDP $PORTS 9000-9002/sctp 127.0.0.1:8000:80"),
        Expanded::Expose(vec![
            s("8080/tcp"),
            s("53/udp"),
            s("80/tcp"),
            s("443/udp"),
            s("9000/sctp"),
            s("9001/sctp"),
            s("9002/sctp"),
            s("80/tcp")
        ])
    );
    assert!(
        try_ex("EXPOSE 80/http").unwrap_err().to_string().ends_with("invalid port \"80/http\": invalid proto: http")
    );
    assert!(try_ex("EXPOSE 70000").unwrap_err().to_string().contains("invalid containerPort"));
    assert!(try_ex("EXPOSE 90-80").unwrap_err().to_string().contains("invalid port range"));
    // The IP and host port are checked as BuildKit's parsePort checks them, then dropped.
    assert_eq!(ex("EXPOSE [::1]:8000:80 ::1:8001:81"), Expanded::Expose(vec![s("80/tcp"), s("81/tcp")]));
    assert!(try_ex("EXPOSE abc:80").unwrap_err().to_string().ends_with("invalid hostPort: abc"));
    assert!(try_ex("EXPOSE nohost:80:80").unwrap_err().to_string().contains("invalid IP address: nohost"));
    assert!(try_ex("EXPOSE 8000-8001:80-82").unwrap_err().to_string().contains("invalid ranges specified"));
    assert_eq!(ex("EXPOSE 8000-8009:80"), Expanded::Expose(vec![s("80/tcp")]));
}

#[test]
fn single_word_instructions() {
    assert_eq!(ex("USER $NAME:${NAME}"), Expanded::User(s("app:app")));
    assert_eq!(ex("WORKDIR $DIR/${NAME}"), Expanded::Workdir(s("/srv/app")));
    assert_eq!(ex("VOLUME $DIR/data [x]"), Expanded::Volume(vec![s("/srv/data"), s("[x]")]));
    assert_eq!(ex("VOLUME [\"$DIR\"]"), Expanded::Volume(vec![s("/srv")]));
    assert_eq!(ex("STOPSIGNAL SIG${SIG:-TERM}"), Expanded::Stopsignal(s("SIGTERM")));
    assert!(try_ex("STOPSIGNAL SIG$NAME").unwrap_err().to_string().ends_with("invalid signal: SIGapp"));
    assert_eq!(ex("MAINTAINER $NAME"), Expanded::Maintainer(s("$NAME")));
    let e = try_ex("VOLUME $EMPTY").unwrap_err();
    assert!(e.to_string().ends_with("VOLUME specified can not be an empty string"));
}

#[test]
fn stopsignal_validation() {
    // As BuildKit's `signal.ParseSignal`: any integer but 0 (`65`, `-1`), or a signal map key.
    for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "SIGKILL", "65", "-1"] {
        assert!(check_signal(ok).is_ok(), "{ok}");
    }
    for bad in ["0", "SIGFOO", "RTMIN+16", "RTMIN+03", ""] {
        assert!(check_signal(bad).is_err(), "{bad}");
    }
}

#[test]
fn healthcheck_config() {
    assert_eq!(ex("HEALTHCHECK NONE"), Expanded::Healthcheck(None));
    assert_eq!(
        ex(
            "HEALTHCHECK --interval=1m30s --timeout=5s --start-period=0s --start-interval=500ms --retries=4 CMD [\"/check\", \"$NAME\"]"
        ),
        Expanded::Healthcheck(Some(Healthcheck {
            test: vec![s("CMD"), s("/check"), s("$NAME")],
            interval_ns: Some(90_000_000_000),
            timeout_ns: Some(5_000_000_000),
            start_period_ns: None,
            start_interval_ns: Some(500_000_000),
            retries: Some(4),
        }))
    );
    let Expanded::Healthcheck(Some(h)) = ex("HEALTHCHECK CMD curl -f http://localhost/") else { panic!() };
    assert_eq!(h.test, [s("CMD-SHELL"), s("curl -f http://localhost/")]);
}

#[test]
fn onbuild_is_not_expanded() {
    assert_eq!(ex("ONBUILD RUN echo $NAME"), Expanded::Onbuild(s("RUN echo $NAME")));
    assert_eq!(ex("onbuild   COPY <<EOF /x\n$NAME\nEOF"), Expanded::Onbuild(s("COPY <<EOF /x\n$NAME\nEOF")));
}

#[test]
fn backtick_escape_in_expansion() {
    assert_eq!(ex_escape("WORKDIR C:\\Users\\$NAME", '`').unwrap(), Expanded::Workdir(s("C:\\Users\\app")));
    assert_eq!(ex_escape("ENV X=`$NAME", '`').unwrap(), Expanded::Env(vec![(s("X"), s("$NAME"))]));
}

#[test]
fn expansion_errors_name_the_instruction() {
    let e = try_ex("WORKDIR ${UNSET:?must be set}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:2: WORKDIR ${UNSET:?must be set}: failed to process \"${UNSET:?must be set}\": UNSET: must be set"
    );
    assert_eq!(e.line(), Some(2));
}

#[test]
fn overlay_and_closure_vars() {
    let top: BTreeMap<String, String> = [(s("A"), s("top"))].into();
    let base = vars();
    let o = Overlay { top: &top, base: &base };
    assert_eq!(o.get("A").as_deref(), Some("top"));
    assert_eq!(o.get("NAME").as_deref(), Some("app"));
    assert_eq!(o.get("NOPE"), None);
    let hm: std::collections::HashMap<String, String> = [(s("K"), s("v"))].into();
    assert_eq!(Vars::get(&hm, "K").as_deref(), Some("v"));
    assert_eq!(NoVars.get("K"), None);
}
