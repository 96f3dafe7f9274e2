//! What a cache miss's explanation and a pointer moved to a hit cost in requests, against a
//! cache repository behind a proxy that sees (and can delay) each one: a registry far away
//! makes every round trip taken one after another count, and every request sent twice.

use std::time::{Duration, Instant};

use super::*;

/// The path of `c`'s cache repository on its registry (`<repo>/cache`).
fn cache_path(c: &Ctx) -> String {
    c.cache_repo.split_once('/').unwrap().1.to_string()
}

/// The manifest `reference` names, as its registry serves it.
fn raw_manifest(reference: &str) -> Vec<u8> {
    let o =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")]));
    assert_ok(&o);
    o.stdout
}

/// The longest run among requests that arrived at `at` (in order) each sent only once the one
/// before it was answered. Each was held `hold` before it was answered, so one sent after
/// another's answer arrived at least `hold` after it; requests sent together arrive within a
/// moment of each other.
fn one_after_another(at: &[Instant], hold: Duration) -> usize {
    let mut run = vec![1; at.len()];
    for i in 0..at.len() {
        for j in 0..i {
            if at[i].duration_since(at[j]) >= hold {
                run[i] = run[i].max(run[j] + 1);
            }
        }
    }
    run.into_iter().max().unwrap_or(0)
}

/// A step that moved up past 8 removed lines, its stage's last: its place's entries past the
/// stage's end are read (up to 16 places), every read of a pointer tag held 500 ms as by a
/// registry far away. They took one round trip each, one after another (8 here, 4 s); now the
/// first place alone (nothing there is the common case), then the rest at once: with the
/// lookup's own pointer read, 3 round trips. The explanation is the same.
#[test]
fn places_past_a_stages_end_are_read_in_two_round_trips() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let names: Vec<String> = (1..=8).map(|i| format!("r{i}")).chain(["z".to_string()]).collect();
    let runs = |names: &[String]| {
        format!("{}{}", from(), names.iter().map(|r| format!("RUN echo {r} > /{r}\n")).collect::<String>())
    };
    let c = Ctx::at(&proxy.addr, "removed-far", &runs(&names));
    c.build(&[]);
    std::fs::write(c.path().join("Dockerfile"), runs(&names[8..])).unwrap();
    let hold = Duration::from_millis(500);
    let pointers = format!("GET /v2/{}/manifests/step-", cache_path(&c));
    proxy.inject("GET", &pointers["GET ".len()..], faults::Fault::Hold { pause: hold }, usize::MAX);
    let before = proxy.seen().len();
    let o = c.build(&[]);
    assert_eq!(o.at(2), "miss: moved up from line 10 (lines 2–9 were removed)");
    let read: Vec<(Instant, String)> =
        proxy.seen_at().into_iter().skip(before).filter(|(_, s)| s.starts_with(&pointers)).collect();
    // The step's own pointer, and at least the 8 places past the end up to its entry's.
    assert!(read.len() >= 9, "{read:?}");
    let at: Vec<Instant> = read.iter().map(|(t, _)| *t).collect();
    let rounds = one_after_another(&at, hold);
    let t0 = at[0];
    let shown: Vec<String> = read.iter().map(|(t, s)| format!("+{:?} {s}", t.duration_since(t0))).collect();
    assert!(rounds <= 3, "{rounds} pointer reads one after another:\n{}", shown.join("\n"));
}

/// A step that hits an entry another Dockerfile wrote (the same key), whose own pointer tag is
/// absent, gets its pointer moved to that entry: tagged with the manifest its lookup read, not
/// fetched by its key a second time. The pointer names the very same manifest.
#[test]
fn a_pointer_moved_to_an_entry_hit_tags_the_manifest_its_lookup_read() {
    let proxy = faults::FaultProxy::start(&env().registry);
    let df = format!("{}RUN echo shared > /shared\n", from());
    let c = Ctx::at(&proxy.addr, "point-once", &df);
    c.build(&[]);
    let other = c.path().join("other.Dockerfile");
    std::fs::write(&other, &df).unwrap();
    let before = proxy.seen().len();
    let o = c.build(&["--dockerfile", other.to_str().unwrap()]);
    o.all_hit();
    let key = o
        .events
        .iter()
        .find(|e| e["event"] == "cache_lookup" && e["components"]["line"] == 2)
        .map(|e| e["key"].as_str().unwrap().to_string())
        .unwrap();
    let path = cache_path(&c);
    let seen = proxy.seen().split_off(before);
    let moved: Vec<&String> =
        seen.iter().filter(|s| s.starts_with(&format!("PUT /v2/{path}/manifests/step-"))).collect();
    assert_eq!(moved.len(), 1, "the other Dockerfile's pointer was moved to the entry: {seen:?}");
    let fetched = seen.iter().filter(|s| **s == format!("GET /v2/{path}/manifests/{key}")).count();
    assert_eq!(fetched, 1, "the entry's manifest, fetched by its lookup alone: {seen:?}");
    let tag = moved[0].rsplit('/').next().unwrap();
    let registry = &env().registry;
    assert_eq!(raw_manifest(&format!("{registry}/{path}:{tag}")), raw_manifest(&format!("{registry}/{path}:{key}")));
}
