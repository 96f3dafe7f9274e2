//! A build whose context changes while it runs fails closed: a COPY (run at once or deferred)
//! or a RUN with a bind mount of the context that reads files other than those its cache key
//! was made from fails, naming the instruction and the path, and nothing is pushed or cached
//! from it. Without the check, the step's cache entry said "key(old content) → layer(new
//! content)", and a later build whose context had the old content again reused that layer.
//!
//! The context is changed at a chosen moment, deterministically: a RUN between the planning of
//! the stage's keys (which hashes the context) and the step that reads the files asks the test
//! over HTTP (busybox `wget` to a port the test listens on) and waits for the answer; the test
//! changes the context before it answers. Against the real registry, every build a fresh pod's
//! (`common::traced::Project`); after the failed build the original context is put back and
//! rebuilt: nothing built from the changed files may be served.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::traced::Project;
use common::*;

/// What the gate does to the context when a RUN reaches it.
type Edit = Box<dyn FnOnce() + Send>;

/// A port RUNs wait on: each request is answered once the edit queued for it (if any) is done.
struct Gate {
    port: u16,
    edits: Arc<Mutex<Vec<Edit>>>,
}

impl Gate {
    fn new() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let edits: Arc<Mutex<Vec<Edit>>> = Arc::default();
        let queued = edits.clone();
        // Serves for the rest of the test process: a RUN that reaches the gate with nothing
        // queued is answered at once.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let edit = queued.lock().unwrap().pop();
                if let Some(edit) = edit {
                    edit();
                }
                let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
            }
        });
        Gate { port, edits }
    }

    /// The RUN that waits for the gate (it never fails: a rebuild may run it with no test
    /// listening).
    fn run(&self) -> String {
        format!("RUN wget -q -O /dev/null http://127.0.0.1:{}/ || true", self.port)
    }

    /// Makes `edit` to the context when the next RUN reaches the gate.
    fn on_next(&self, edit: impl FnOnce() + Send + 'static) {
        self.edits.lock().unwrap().push(Box::new(edit));
    }
}

/// `b/x.txt` and `b/y.txt`, each 6 bytes, dated in the past.
fn write_b(ctx: &Path) {
    std::fs::create_dir_all(ctx.join("b")).unwrap();
    for (name, text) in [("x.txt", "x-old\n"), ("y.txt", "y-old\n")] {
        std::fs::write(ctx.join("b").join(name), text).unwrap();
        set_mtime(&ctx.join("b").join(name), 1_600_000_000);
    }
}

fn set_mtime(p: &Path, secs: u64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

/// The ways the context is changed under the step.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// `b/x.txt` gets other bytes of the same size, its mtime put back (`touch -d`).
    Content,
    /// `b/z.txt` is added.
    Added,
    /// `b/y.txt` is removed.
    Removed,
    /// `b/y.txt` becomes a symlink to `x.txt`.
    Symlink,
}

impl Change {
    fn apply(self, ctx: &Path) {
        let b = ctx.join("b");
        match self {
            Change::Content => {
                let mtime = std::fs::metadata(b.join("x.txt")).unwrap().mtime();
                std::fs::write(b.join("x.txt"), "x-NEW\n").unwrap();
                set_mtime(&b.join("x.txt"), mtime as u64);
            }
            Change::Added => std::fs::write(b.join("z.txt"), "z-new\n").unwrap(),
            Change::Removed => std::fs::remove_file(b.join("y.txt")).unwrap(),
            Change::Symlink => {
                std::fs::remove_file(b.join("y.txt")).unwrap();
                std::os::unix::fs::symlink("x.txt", b.join("y.txt")).unwrap();
            }
        }
    }

    /// What the error says of it.
    fn said(self) -> &'static str {
        match self {
            Change::Content => "b/x.txt was written to",
            Change::Added => "b/z.txt was added after the step's cache key was made from the context",
            Change::Removed => "b/y.txt was removed after the step's cache key was made from the context",
            Change::Symlink => "b/y.txt is now a symlink (it was a regular file",
        }
    }
}

/// Puts the original `b/` back.
fn restore(ctx: &Path) {
    std::fs::remove_dir_all(ctx.join("b")).unwrap();
    write_b(ctx);
}

/// The digest the destination tag names, if it exists.
fn pushed(dest: &str) -> Option<String> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["Digest"].as_str().map(str::to_string)
}

#[track_caller]
fn assert_failed_closed(
    out: &std::process::Output,
    dest: &str,
    before: Option<String>,
    instruction: &str,
    change: Change,
) {
    let err = stderr(out);
    assert!(!out.status.success(), "{change:?}: the build succeeded:\n{err}");
    let want = format!("Dockerfile:{instruction}: the build context changed while the build ran: {}", change.said());
    assert!(err.contains(&want), "{change:?}: no {want:?} in:\n{err}");
    assert!(err.contains("nothing was pushed or cached"), "{err}");
    assert_eq!(pushed(dest), before, "{change:?}: {dest} was pushed");
}

/// `COPY a`, the gate, then `COPY b/` and a RUN that reads it: the second COPY's key is made
/// when the stage starts, its files read after the gate.
#[test]
fn a_copy_of_files_changed_after_its_key_was_made_fails_and_caches_nothing() {
    let gate = Gate::new();
    for change in [Change::Content, Change::Added, Change::Removed, Change::Symlink] {
        let df = format!("FROM {}\nCOPY a /a\n{}\nCOPY b /b/\nRUN cat /b/* > /all\n", env().busybox(), gate.run());
        let p = Project::new("ctx-changed", &df);
        p.write("a", "a\n");
        let ctx = p.dir.path().join("ctx");
        write_b(&ctx);
        let at = ctx.clone();
        gate.on_next(move || change.apply(&at));
        // With the COPY layers in the cache repository too: the entry would be there.
        let (out, _) = p.try_build_to(&p.dest, &["--cache=true", "--cache-copy-layers"]);
        assert_failed_closed(&out, &p.dest, None, "4: COPY b /b/", change);

        // The original context again: nothing of the failed build is served for the COPY or
        // the RUN after it, and the image holds the original files.
        restore(&ctx);
        let again = p.build(&["--cache-copy-layers"]);
        assert_eq!(again.at(2), "hit", "{change:?}: the COPY before the change was cached");
        assert_ne!(again.at(4), "hit", "{change:?}");
        assert_ne!(again.at(5), "hit", "{change:?}");
        let u = pull_and_unpack(&p.dest);
        assert_eq!(Tree::content(&u.rootfs(), "/all"), "x-old\ny-old\n", "{change:?}");
    }
}

/// Without `--cache-copy-layers` (kaniko's flags), a COPY's layer is found again by the layer
/// reference record of a pushed image: a build that pushed the changed files would have served
/// them to a build of the original context.
#[test]
fn a_copy_kept_out_of_the_cache_repository_fails_too_and_pushes_nothing() {
    let gate = Gate::new();
    let change = Change::Content;
    let df = format!("FROM {}\n{}\nCOPY b /b/\nRUN cat /b/* > /all\n", env().busybox(), gate.run());
    let p = Project::new("ctx-changed-ref", &df);
    let ctx = p.dir.path().join("ctx");
    write_b(&ctx);
    let at = ctx.clone();
    gate.on_next(move || change.apply(&at));
    let (out, _) = p.try_build_to(&p.dest, &["--cache=true"]);
    assert_failed_closed(&out, &p.dest, None, "3: COPY b /b/", change);
    restore(&ctx);
    let again = p.build(&[]);
    assert_eq!(again.status(3), "built");
    assert_ne!(again.at(4), "hit");
    let u = pull_and_unpack(&p.dest);
    assert_eq!(Tree::content(&u.rootfs(), "/all"), "x-old\ny-old\n");
}

/// A builder's COPY left unrun (deferred: every later step of its stage hit) runs only when a
/// `COPY --from` of it misses, after the final stage's RUN at the gate: long after its key was
/// made.
#[test]
fn a_deferred_copy_of_files_changed_after_its_key_was_made_fails() {
    let gate = Gate::new();
    for change in [Change::Content, Change::Added] {
        let df = format!(
            "FROM {b} AS builder\n\
             COPY b /b/\n\
             RUN cat /b/* > /all\n\
             FROM {b}\n\
             ARG W=1\n\
             RUN echo $W > /w\n\
             {gate}\n\
             COPY --from=builder /all /b /x/\n",
            b = env().busybox(),
            gate = gate.run()
        );
        let p = Project::new("ctx-changed-deferred", &df);
        let ctx = p.dir.path().join("ctx");
        write_b(&ctx);
        p.build(&[]);

        let at = ctx.clone();
        gate.on_next(move || change.apply(&at));
        let before = pushed(&p.dest);
        assert!(before.is_some());
        let (out, traced) = p.try_build_to(&p.dest, &["--cache=true", "--build-arg", "W=2"]);
        assert_eq!(traced.status(2), "deferred", "{change:?}: {}", traced.log);
        // Reported at the deferred COPY, which the reader ran.
        assert_failed_closed(&out, &p.dest, before, "2: COPY b /b/", change);

        restore(&ctx);
        p.build(&["--build-arg", "W=2"]);
        let u = pull_and_unpack(&p.dest);
        assert_eq!(Tree::content(&u.rootfs(), "/x/all"), "x-old\ny-old\n", "{change:?}");
        assert_eq!(Tree::content(&u.rootfs(), "/x/x.txt"), "x-old\n", "{change:?}");
        assert!(!u.rootfs().join("x/z.txt").exists(), "{change:?}");
    }
}

/// A RUN's bind mount of the context is keyed by the context's files as COPY is, and the RUN
/// reads them while it runs: they are checked once it is done.
#[test]
fn a_run_whose_context_mount_changed_while_it_ran_fails() {
    let gate = Gate::new();
    for change in [Change::Content, Change::Added] {
        let run = format!(
            "RUN --mount=type=bind,source=b,target=/b wget -q -O /dev/null http://127.0.0.1:{}/; cat /b/* > /all",
            gate.port
        );
        let df = format!("FROM {}\n{run}\n", env().busybox());
        let p = Project::new("ctx-changed-run", &df);
        let ctx = p.dir.path().join("ctx");
        write_b(&ctx);
        let at = ctx.clone();
        gate.on_next(move || change.apply(&at));
        let (out, _) = p.try_build_to(&p.dest, &["--cache=true"]);
        assert_failed_closed(&out, &p.dest, None, &format!("2: {run}"), change);
        restore(&ctx);
        let again = p.build(&[]);
        assert_ne!(again.at(2), "hit", "{change:?}");
        let u = pull_and_unpack(&p.dest);
        assert_eq!(Tree::content(&u.rootfs(), "/all"), "x-old\ny-old\n", "{change:?}");
    }
}
