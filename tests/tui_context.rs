//! A build whose context was fetched (`--context git://…`): the debugger names where it came
//! from — the repository and the commit — where it names the Dockerfile, since the fetched
//! directory is gone once the build ends.

mod tui_support;

use insta::assert_snapshot;
use trowel::tui::{App, Theme};
use trowel_events::{ContextOrigin, Digest, Event};
use tui_support::*;

#[test]
fn a_git_context_is_named_with_its_commit_80x24() {
    let mut events = events("tour");
    let Event::BuildStarted { context_origin, dockerfile_path, .. } = &mut events[0].event else {
        panic!("the trace starts with build_started")
    };
    *dockerfile_path = "/tmp/trowel-build-x1/context/Dockerfile".into();
    *context_origin = Some(ContextOrigin {
        kind: "git".into(),
        source: "git://gitlab.example/team/app.git#refs/heads/main".into(),
        reference: Some("refs/heads/main".into()),
        commit: Some("4f2a9c1be0d37a65f0e2c4d1b8a9e6f3c2d1a0b9".into()),
        digest: Digest::try_from(format!("sha256:{}", "ab".repeat(32))).unwrap(),
        bytes: 4096,
        files: 12,
        sub_path: None,
        time: None,
    });
    let mut app = App::replay("ctx.jsonl".to_string(), &events);
    let t = screen(&mut app, 80, 24, &Theme::dark());
    let text: String = t.backend().buffer().content.iter().map(|c| c.symbol()).collect();
    assert!(text.contains("@4f2a9c1be0d3"), "{text}");
    assert!(!text.contains("trowel-build-x1"), "{text}");
    assert_snapshot!(t.backend());
    // With room, the label too; the full origin is in the log and `replay --summary`.
    let t = screen(&mut app, 120, 40, &Theme::dark());
    let text: String = t.backend().buffer().content.iter().map(|c| c.symbol()).collect();
    assert!(text.contains("Dockerfile · app.git @4f2a9c1be0d3"), "{text}");
}
