//! The deployment examples in deploy/ are valid: the Kubernetes manifests against the API
//! schemas (kubernetes-validate from PyPI, strict), the Tekton Task against Tekton's Task CRD
//! schema (vendored, strict), .gitlab-ci.yml against GitLab's CI schema (check-jsonschema), the
//! runner config.toml with the seed's security settings — and the validation itself rejects a
//! broken manifest and a broken Task.

mod common;

use std::process::Command;

use common::*;

#[test]
fn deploy_examples_validate_and_a_broken_one_does_not() {
    let o = run(Command::new(repo_root().join("scripts/validate-deploy.sh")).current_dir(repo_root()));
    assert_ok(&o);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    for f in [
        "build-job.yaml",
        "build-job-mounted-context.yaml",
        "build-job-git-context.yaml",
        "build-job-s3-context.yaml",
        "build-job-userns.yaml",
        "debug-pod.yaml",
        "cache-pvc.yaml",
    ] {
        assert!(out.contains(&format!("{f} passed")), "{f} not validated: {out}");
    }
    assert!(out.contains("deploy/tekton/trowel-task.yaml: Tekton Task passed"), "{out}");
    assert!(out.contains("config.toml: ok"), "{out}");

    // The validation can fail: a misspelt field in a copy of the job is rejected.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(repo_root().join("deploy/kubernetes/build-job.yaml")).unwrap();
    std::fs::write(&bad, good.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalaton: false")).unwrap();
    let o = run(Command::new(repo_root().join("target/deploy-validators/bin/kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.30"])
        .arg(&bad));
    assert!(!o.status.success());
    assert!(stdout(&o).contains("allowPrivilegeEscalaton"), "{}", stdout(&o));

    // And a misspelt field of a Tekton step, or a Task of another API version.
    let task = std::fs::read_to_string(repo_root().join("deploy/tekton/trowel-task.yaml")).unwrap();
    for (from, to, want) in [
        ("workingDir:", "workingDirectory:", "'workingDirectory' was unexpected"),
        ("apiVersion: tekton.dev/v1\n", "apiVersion: tekton.dev/v1beta1\n", "'tekton.dev/v1' was expected"),
    ] {
        assert!(task.contains(from), "{from}");
        std::fs::write(&bad, task.replace(from, to)).unwrap();
        let o = run(Command::new(repo_root().join("target/deploy-validators/bin/check-jsonschema"))
            .arg("--schemafile")
            .arg(repo_root().join("deploy/schemas/tekton-task-v1.schema.json"))
            .arg(&bad));
        assert!(!o.status.success(), "{to} accepted");
        assert!(stdout(&o).contains(want), "{}", stdout(&o));
    }
}
