//! The Tekton Task of deploy/tekton/trowel-task.yaml, run as Tekton would run its steps: the
//! Task read from the YAML (python3-yaml), `$(params.…)`, `$(workspaces.source.path)` and
//! `$(results.….path)` replaced as Tekton replaces them (an array param given as a whole argument
//! becomes its items; defaults where the run gives no value), the build step's args given to the
//! trowel under test in the step's working directory, the write-url step's script run with bash.
//! The results must be what Tekton Chains reads: IMAGE_DIGEST the pushed digest (as skopeo sees
//! it), IMAGE_URL the image as given.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn task() -> Value {
    let o = run(Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(repo_root().join("deploy/tekton/trowel-task.yaml")));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Tekton's substitution of one string.
fn substitute(s: &str, params: &BTreeMap<String, Value>, workspace: &Path, results: &Path) -> String {
    let mut out = s.replace("$(workspaces.source.path)", &workspace.display().to_string());
    for (name, v) in params {
        if let Some(text) = v.as_str() {
            out = out.replace(&format!("$(params.{name})"), text);
        }
    }
    for r in ["IMAGE_DIGEST", "IMAGE_URL"] {
        out = out.replace(&format!("$(results.{r}.path)"), &results.join(r).display().to_string());
    }
    assert!(!out.contains("$("), "unsubstituted: {out}");
    out
}

#[test]
fn the_tekton_task_builds_pushes_and_writes_its_results() {
    let task = task();
    let spec = &task["spec"];
    let workspace = tempfile::tempdir().unwrap();
    std::fs::write(workspace.path().join("Dockerfile"), format!("FROM {}\nCOPY f /f\n", env().busybox())).unwrap();
    std::fs::write(workspace.path().join("f"), "tekton\n").unwrap();
    let results = tempfile::tempdir().unwrap();
    let image = format!("{}/{}:1", env().registry, unique_repo("tekton"));

    // The run's params over the Task's defaults.
    let mut params: BTreeMap<String, Value> = BTreeMap::new();
    for p in spec["params"].as_array().unwrap() {
        if let Some(d) = p.get("default") {
            params.insert(p["name"].as_str().unwrap().to_string(), d.clone());
        }
    }
    params.insert("IMAGE".into(), Value::from(image.clone()));
    params.insert("EXTRA_ARGS".into(), serde_json::json!(["--reproducible", "--label", "built-by=tekton"]));

    let steps = spec["steps"].as_array().unwrap();
    let build = &steps[0];
    let mut args = Vec::new();
    for a in build["args"].as_array().unwrap() {
        let a = a.as_str().unwrap();
        if let Some(name) = a.strip_prefix("$(params.").and_then(|r| r.strip_suffix(')'))
            && let Some(items) = params[name].as_array()
        {
            args.extend(items.iter().map(|i| i.as_str().unwrap().to_string()));
            continue;
        }
        args.push(substitute(a, &params, workspace.path(), results.path()));
    }
    let dir = substitute(build["workingDir"].as_str().unwrap(), &params, workspace.path(), results.path());
    let o = run(trowel().args(&args).current_dir(&dir));
    assert_ok(&o);

    let script = substitute(steps[1]["script"].as_str().unwrap(), &params, workspace.path(), results.path());
    assert_ok(&run(Command::new("bash").arg("-c").arg(script)));

    let digest = std::fs::read_to_string(results.path().join("IMAGE_DIGEST")).unwrap();
    let url = std::fs::read_to_string(results.path().join("IMAGE_URL")).unwrap();
    assert_eq!(url, image);
    let seen = skopeo_inspect(&image);
    assert_eq!(digest, seen["Digest"].as_str().unwrap(), "IMAGE_DIGEST is the pushed digest, no newline");
    assert_eq!(seen["Labels"]["built-by"], "tekton", "EXTRA_ARGS reached the build");
}
