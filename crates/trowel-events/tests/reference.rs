//! `docs/trace-format.md` carries the reference generated from the event types: this fails when
//! the two differ, and `TROWEL_UPDATE_DOCS=1` rewrites the document's generated section.

use std::path::PathBuf;

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE";
const END: &str = "<!-- END GENERATED REFERENCE -->";
const HOW: &str = "TROWEL_UPDATE_DOCS=1 cargo test -p trowel-events --test reference";

#[test]
fn the_trace_format_document_is_generated_from_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/trace-format.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let begin = doc.find(BEGIN).unwrap_or_else(|| panic!("{} has no {BEGIN:?} marker", path.display()));
    let start = begin + doc[begin..].find('\n').expect("the marker ends its line") + 1;
    let end = doc.find(END).unwrap_or_else(|| panic!("{} has no {END:?} marker", path.display()));
    assert!(start <= end, "{}: the end marker comes before the start marker", path.display());
    let want = format!("\n{}\n\n", trowel_events::reference_markdown().trim_end());
    if std::env::var("TROWEL_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(&path, format!("{}{want}{}", &doc[..start], &doc[end..])).expect("rewrite the document");
        return;
    }
    let have = &doc[start..end];
    if have != want {
        let (n, (h, w)) = have
            .lines()
            .chain(std::iter::repeat(""))
            .zip(want.lines().chain(std::iter::repeat("")))
            .enumerate()
            .find(|(_, (h, w))| h != w)
            .expect("texts that differ differ in a line");
        panic!(
            "docs/trace-format.md's reference is not what the event types say (first difference, line {} of \
             the section):\n  document: {h}\n  types:    {w}\nrun `{HOW}` to rewrite it",
            n + 1
        );
    }
}

/// A new event without a doc comment would be a heading with nothing under it.
#[test]
fn every_event_and_type_says_what_it_is() {
    let schema = trowel_events::schema();
    for v in schema["oneOf"].as_array().unwrap() {
        assert!(v["description"].is_string(), "event {} has no doc comment", v["properties"]["event"]["const"]);
    }
    for (name, def) in schema["$defs"].as_object().unwrap() {
        assert!(def["description"].is_string(), "type {name} has no doc comment");
    }
    let md = trowel_events::reference_markdown();
    for wire in
        ["### `paused`", "`chardevice`", "`before_step`", "#### `kind`: `run_to`", "`paused_ms` | integer, optional"]
    {
        assert!(md.contains(wire), "{wire:?} is not in the reference:\n{md}");
    }
}
