//! The trace format's reference, in Markdown, generated from [`schema`](crate::schema): every
//! event with its fields, their JSON types and the doc comments of the types here.
//!
//! `docs/trace-format.md` carries it between two markers, under hand-written prose; a test
//! (`tests/reference.rs`) fails when the two differ, so the document cannot drift from the
//! types (it once listed `char_device` where the JSON says `chardevice`).

use std::fmt::Write;

use serde_json::{Map, Value};

/// The reference section of `docs/trace-format.md`.
pub fn reference_markdown() -> String {
    let schema = crate::schema();
    let mut out = String::new();
    out.push_str("## Every line\n\n");
    out.push_str(
        "Each line after the header is one event: these fields, then `event` (its kind) and the \
         kind's own fields beside them.\n\n",
    );
    fields(&mut out, &schema, &[]);
    out.push_str("| `event` | string | The event's kind: one of the headings below. |\n");
    out.push_str("\n## Events\n");
    for variant in schema["oneOf"].as_array().into_iter().flatten() {
        let name = variant["properties"]["event"]["const"].as_str().unwrap_or("?");
        let _ = writeln!(out, "\n### `{name}`\n");
        description(&mut out, variant);
        fields(&mut out, variant, &["event"]);
    }
    out.push_str("\n## Types\n\nThe types the events' fields refer to.\n");
    for (name, def) in schema["$defs"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "\n### `{name}`\n");
        definition(&mut out, def);
    }
    out
}

/// The doc comment, as one paragraph.
fn description(out: &mut String, v: &Value) {
    if let Some(d) = v["description"].as_str() {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table of an object's properties, but `skip` (a union's tag, said in the heading).
fn fields(out: &mut String, object: &Value, skip: &[&str]) {
    let empty = Map::new();
    let props = object["properties"].as_object().unwrap_or(&empty);
    let required: Vec<&str> = object["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let rows: Vec<(&String, &Value)> = props.iter().filter(|(k, _)| !skip.contains(&k.as_str())).collect();
    if rows.is_empty() {
        out.push_str(if skip.is_empty() { "No fields.\n" } else { "No other fields.\n" });
        return;
    }
    out.push_str("| field | type | meaning |\n|---|---|---|\n");
    for (name, prop) in rows {
        let mut ty = type_of(prop);
        if !required.contains(&name.as_str()) {
            ty.push_str(", optional");
        }
        let meaning = prop["description"].as_str().map(one_line).unwrap_or_default();
        let _ = writeln!(out, "| `{name}` | {} | {} |", cell(&ty), cell(&meaning));
    }
}

/// A constant as it appears in a line: strings without their quotes (`built`), as tables of
/// values show them.
fn literal(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Table cells cannot hold a `|`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// A JSON type in words, naming (and linking) the defined types.
fn type_of(v: &Value) -> String {
    if v.as_bool() == Some(true) || v.as_object().is_some_and(|o| o.keys().all(|k| k == "description")) {
        return "any JSON".into();
    }
    if let Some(r) = v["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[`{name}`](#{})", name.to_lowercase());
    }
    if let Some(c) = v.get("const") {
        return format!("`{}`", literal(c));
    }
    if let Some(options) = v["anyOf"].as_array().or(v["oneOf"].as_array()) {
        return options.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    if let Some(values) = v["enum"].as_array() {
        return values.iter().map(|x| format!("`{}`", literal(x))).collect::<Vec<_>>().join(" or ");
    }
    match &v["type"] {
        Value::Array(types) => {
            types.iter().map(|t| simple(v, t.as_str().unwrap_or("?"))).collect::<Vec<_>>().join(" or ")
        }
        Value::String(t) => simple(v, t),
        _ => "any JSON".into(),
    }
}

fn simple(v: &Value, ty: &str) -> String {
    match ty {
        "array" => {
            let items = type_of(&v["items"]);
            if items.contains(" or ") { format!("array of ({items})") } else { format!("array of {items}") }
        }
        "object" if v.get("additionalProperties").is_some() => {
            format!("object: name → {}", type_of(&v["additionalProperties"]))
        }
        "string" if v["maxLength"] == 1 => "string (one character)".into(),
        other => other.into(),
    }
}

/// One defined type: an object's fields, a string's values, or a tagged union's variants.
fn definition(out: &mut String, def: &Value) {
    description(out, def);
    if def.get("properties").is_some() {
        fields(out, def, &[]);
        return;
    }
    if let Some(values) = def["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|x| format!("`{}`", literal(x))).collect();
        let _ = writeln!(out, "One of {}.", values.join(", "));
        return;
    }
    let Some(variants) = def["oneOf"].as_array() else {
        let _ = writeln!(out, "A {}.", type_of(def));
        return;
    };
    match tag_of(variants) {
        Some(tag) => {
            let _ = writeln!(out, "An object whose `{tag}` says which of these it is:");
            for v in variants {
                let _ = writeln!(out, "\n#### `{tag}`: `{}`\n", literal(&v["properties"][tag]["const"]));
                description(out, v);
                fields(out, v, &[tag]);
            }
        }
        // A string enum some of whose values are documented (schemars groups the others).
        None => {
            out.push_str("| value | meaning |\n|---|---|\n");
            for v in variants {
                let meaning = v["description"].as_str().map(one_line).unwrap_or_default();
                let values = v["enum"].as_array().cloned().unwrap_or_else(|| vec![v["const"].clone()]);
                for x in values {
                    let _ = writeln!(out, "| `{}` | {} |", literal(&x), cell(&meaning));
                }
            }
        }
    }
}

/// The property every variant of a union fixes to a constant (`kind`), if there is one.
fn tag_of(variants: &[Value]) -> Option<&str> {
    let first = variants.first()?["properties"].as_object()?;
    first.iter().find_map(|(k, p)| {
        (p.get("const").is_some() && variants.iter().all(|v| v["properties"][k].get("const").is_some()))
            .then_some(k.as_str())
    })
}
