//! The GitLab job of deploy/gitlab/.gitlab-ci.yml, run as GitLab runs it: its `build` job's
//! `script:` lines (read from the YAML with python3-yaml, as the runner parses them) joined into
//! one bash script (`set -eo pipefail`, as the runner's shell does), run with GitLab's
//! predefined variables pointing at the testenv's htpasswd registry, the only change to the text
//! being the binary path (`/trowel/trowel` → the trowel under test). The job is the kaniko job of
//! GitLab's documentation with `/kaniko/executor` replaced, which is checked too; credentials
//! come from CI_REGISTRY_USER/CI_REGISTRY_PASSWORD, which trowel reads as the kaniko fork does.
//! skopeo reads the pushed image.

mod common;

use std::process::Command;

use common::*;

/// The `script:` of GitLab's kaniko job ("Use kaniko to build Docker images",
/// docs.gitlab.com/ee/ci/docker/using_kaniko.html), one entry per list item as YAML reads it.
const GITLAB_DOCS_KANIKO_SCRIPT: &[&str] = &[
    "/kaniko/executor --context \"${CI_PROJECT_DIR}\" --dockerfile \"${CI_PROJECT_DIR}/Dockerfile\" --destination \"${CI_REGISTRY_IMAGE}:${CI_COMMIT_TAG}\"",
];

/// The job's script lines, as the runner would get them from the YAML.
fn job_script(job: &str) -> Vec<String> {
    let o = run(Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]]['script']))")
        .arg(repo_root().join("deploy/gitlab/.gitlab-ci.yml"))
        .arg(job));
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).expect("a list of strings")
}

#[test]
fn the_gitlab_job_is_the_kaniko_job_and_builds_and_pushes() {
    let env = env();
    let script = job_script("build");
    let kaniko: Vec<String> =
        GITLAB_DOCS_KANIKO_SCRIPT.iter().map(|l| l.replace("/kaniko/executor", "/trowel/trowel")).collect();
    assert_eq!(script, kaniko, "the job is GitLab's kaniko job with only the binary path changed");

    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("Dockerfile"),
        format!("FROM {}\nCOPY app.txt /app.txt\nRUN cat /app.txt > /built\n", env.busybox()),
    )
    .unwrap();
    std::fs::write(project.path().join("app.txt"), "built by the GitLab job\n").unwrap();
    let home = tempfile::tempdir().unwrap();
    let image = format!("{}/group/{}", env.auth_registry, unique_repo("gitlab-job"));
    let body: Vec<String> = script.iter().map(|l| l.replace("/trowel/trowel", env!("CARGO_BIN_EXE_trowel"))).collect();
    let o = run(Command::new("bash")
        .arg("-c")
        .arg(format!("set -eo pipefail\n{}\n", body.join("\n")))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home.path())
        .env("CI", "true")
        .env("GITLAB_CI", "true")
        .env("CI_PROJECT_DIR", project.path())
        .env("CI_PROJECT_NAME", "app")
        .env("CI_REGISTRY", &env.auth_registry)
        .env("CI_REGISTRY_IMAGE", &image)
        .env("CI_REGISTRY_USER", &env.auth_user)
        .env("CI_REGISTRY_PASSWORD", &env.auth_password)
        .env("CI_JOB_TOKEN", &env.auth_password)
        .env("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("CI_COMMIT_SHORT_SHA", "01234567")
        .env("CI_COMMIT_TAG", "v1.2.3")
        .env("CI_COMMIT_REF_NAME", "v1.2.3")
        .current_dir(project.path()));
    assert_ok(&o);
    for text in [stdout(&o), stderr(&o)] {
        assert!(!text.contains(&env.auth_password), "the job token is in the job log:\n{text}");
    }
    let creds = format!("{}:{}", env.auth_user, env.auth_password);
    let reference = format!("{image}:v1.2.3");
    let o = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", &creds, "--config", "--raw"])
        .arg(format!("docker://{reference}")));
    assert_ok(&o);
    let config: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let history: Vec<&str> =
        config["history"].as_array().unwrap().iter().filter_map(|h| h["created_by"].as_str()).collect();
    assert!(history.iter().any(|h| h.contains("cat /app.txt > /built")), "{history:?}");
}
