//! The deployment examples in deploy/ are valid: the Kubernetes manifests against the API
//! schemas (kubernetes-validate from PyPI, strict), .gitlab-ci.yml against GitLab's CI schema
//! (check-jsonschema), the runner config.toml with the seed's security settings — and the
//! validation itself rejects a broken manifest.

mod common;

use std::process::Command;

use common::*;

#[test]
fn deploy_examples_validate_and_a_broken_one_does_not() {
    let o = run(Command::new(repo_root().join("scripts/validate-deploy.sh")).current_dir(repo_root()));
    assert_ok(&o);
    let out = format!("{}{}", stdout(&o), stderr(&o));
    for f in ["build-job.yaml", "build-job-mounted-context.yaml", "debug-pod.yaml", "cache-pvc.yaml"] {
        assert!(out.contains(&format!("{f} passed")), "{f} not validated: {out}");
    }
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
}
