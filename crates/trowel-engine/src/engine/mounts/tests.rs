//! Resolution of RUN flags with BuildKit's defaults and errors, and what events say of mounts.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::dockerfile::{PlatformArgs, parse, plan};
use crate::image::manifest::Platform;

fn plan_of(text: &str) -> Plan {
    let df = parse(Path::new("Dockerfile"), text).unwrap();
    let p = Platform::parse("linux/amd64").unwrap();
    plan(&df, None, &BTreeMap::new(), &PlatformArgs { target: p.clone(), build: p }).unwrap()
}

fn mount(value: &str) -> Flag {
    Flag { name: "mount".into(), value: Some(value.into()) }
}

const TWO_STAGES: &str = "FROM busybox AS Build\nRUN true\nFROM busybox\nRUN true\n";

fn one(value: &str, workdir: &str) -> Resolved {
    let p = plan_of(TWO_STAGES);
    let mut m = resolve(&[mount(value)], workdir, &p, 1).unwrap_or_else(|e| panic!("{value}: {e}"));
    m.mounts.remove(0)
}

#[test]
fn targets_are_made_absolute_against_workdir() {
    assert_eq!(one("target=src", "/app").target.as_deref(), Some("/app/src"));
    assert_eq!(one("target=../x", "/app/sub").target.as_deref(), Some("/app/x"));
    // An empty target is the working directory itself (BuildKit joins it).
    assert_eq!(one("type=bind", "/app").target.as_deref(), Some("/app"));
    let p = plan_of(TWO_STAGES);
    let e = resolve(&[mount("type=bind,target=/")], "/", &p, 1).unwrap_err();
    assert!(e.contains("invalid mount target \"/\""), "{e}");
    let e = resolve(&[mount("type=tmpfs")], "/", &p, 1).unwrap_err();
    assert!(e.contains("invalid mount target"), "{e}");
}

#[test]
fn bind_and_cache_defaults() {
    let b = one("target=/src", "/");
    assert_eq!(b.what, What::Bind { from: From::Context, source: "/".into(), rw: false });
    let b = one("type=bind,from=build,source=out/app,target=/in,rw", "/");
    assert_eq!(b.what, What::Bind { from: From::Stage(0), source: "/out/app".into(), rw: true });
    let b = one("from=alpine:3.20,target=/in", "/");
    assert_eq!(b.what, What::Bind { from: From::Image("alpine:3.20".into()), source: "/".into(), rw: false });
    // The id is the target as written (cleaned), not the absolute one.
    let c = one("type=cache,target=.cache//pip/", "/root");
    assert_eq!(c.target.as_deref(), Some("/root/.cache/pip"));
    assert!(
        matches!(&c.what, What::Cache { id, sharing: Sharing::Shared, from: None, readonly: false, .. } if id == ".cache/pip")
    );
    let c = one("type=cache,id=apt,target=/var/cache/apt,sharing=locked,ro", "/");
    assert!(matches!(&c.what, What::Cache { id, sharing: Sharing::Locked, readonly: true, .. } if id == "apt"));
}

#[test]
fn secret_and_ssh_defaults() {
    let s = one("type=secret,id=npmrc", "/");
    assert_eq!(s.target.as_deref(), Some("/run/secrets/npmrc"));
    assert_eq!(s.what, What::Secret { id: "npmrc".into(), env: None, mode: 0o400, uid: 0, gid: 0, required: false });
    // Only an environment variable: no file.
    let s = one("type=secret,id=TOKEN,env=TOKEN,required", "/");
    assert_eq!(s.target, None);
    assert!(matches!(&s.what, What::Secret { env: Some(e), required: true, .. } if e == "TOKEN"));
    // The id from the target's name; a relative target under WORKDIR.
    let s = one("type=secret,target=conf/token,mode=0440,uid=1000", "/app");
    assert_eq!(s.target.as_deref(), Some("/app/conf/token"));
    assert!(matches!(&s.what, What::Secret { id, mode: 0o440, uid: 1000, .. } if id == "token"));
    let p = plan_of(TWO_STAGES);
    let m = resolve(&[mount("type=ssh"), mount("type=ssh,id=gh,target=/ssh.sock,mode=0666")], "/", &p, 1).unwrap();
    assert_eq!(m.mounts[0].target.as_deref(), Some("/run/buildkit/ssh_agent.0"));
    assert_eq!(m.mounts[0].what, What::Ssh { id: "default".into(), mode: 0o600, uid: 0, gid: 0, required: false });
    assert_eq!(m.mounts[1].target.as_deref(), Some("/ssh.sock"));
    assert!(resolve(&[mount("type=ssh,source=x")], "/", &p, 1).unwrap_err().contains("ssh does not support source"));
}

#[test]
fn network_and_security() {
    let p = plan_of(TWO_STAGES);
    let flag = |n: &str, v: &str| Flag { name: n.into(), value: Some(v.into()) };
    let m = resolve(&[flag("network", "none"), flag("security", "insecure")], "/", &p, 1).unwrap();
    assert_eq!((m.network, m.insecure), (Network::None, true));
    let m = resolve(&[flag("network", "host"), flag("security", "sandbox")], "/", &p, 1).unwrap();
    assert_eq!((m.network, m.insecure), (Network::Host, false));
    assert!(resolve(&[flag("network", "bridge")], "/", &p, 1).unwrap_err().contains("unsupported network mode"));
    // Two mounts at one target are both resolved (the step sees the later: `prepare.rs`).
    let m = resolve(&[mount("type=tmpfs,target=/t"), mount("type=cache,target=/t")], "/", &p, 1).unwrap();
    assert_eq!(m.mounts.len(), 2);
}

#[test]
fn events_show_options_never_values() {
    let p = plan_of(TWO_STAGES);
    let info = |v: &str| crate::engine::report::mount(&one(v, "/"), &p);
    let i = info("type=cache,id=apt,target=/var/cache/apt,sharing=locked,mode=0700,uid=100,gid=101");
    assert_eq!((i.kind.as_str(), i.target.as_deref(), i.id.as_deref()), ("cache", Some("/var/cache/apt"), Some("apt")));
    assert_eq!(i.options, ["sharing=locked", "rw", "mode=0700", "uid=100", "gid=101"]);
    let i = info("type=bind,from=build,source=/out,target=/in");
    assert_eq!(
        (i.from.as_deref(), i.source.as_deref(), i.options.as_slice()),
        (Some("stage build"), Some("/out"), &["ro".to_string()][..])
    );
    let i = info("type=secret,id=tok,env=TOKEN,required");
    assert_eq!((i.target, i.options), (None, vec!["env=TOKEN".to_string(), "required".into()]));
    let json = serde_json::to_string(&info("type=tmpfs,target=/t,size=1m")).unwrap();
    assert_eq!(json, r#"{"type":"tmpfs","target":"/t","options":["size=1048576"]}"#);
}
