#!/usr/bin/env bash
# Validates deploy/: the Kubernetes manifests against the Kubernetes API schemas
# (kubernetes-validate, strict: unknown fields are errors), the Tekton Task against Tekton's
# Task CRD schema (deploy/schemas/tekton-task-v1.schema.json: vendored from tektoncd/pipeline,
# made strict the same way; see scripts/vendor-tekton-schema.py), .gitlab-ci.yml against
# GitLab's CI schema (check-jsonschema's vendored copy), and the runner's config.toml (TOML, and the
# security settings the seed deployment requires). Installs the validators from PyPI into a
# virtualenv under target/ the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/deploy-validators
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate check-jsonschema
fi
for task in deploy/tekton/*.yaml; do
  "$venv/bin/check-jsonschema" --schemafile deploy/schemas/tekton-task-v1.schema.json "$task"
  echo "$task: Tekton Task passed"
done
"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.30 deploy/kubernetes/*.yaml
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci deploy/gitlab/.gitlab-ci.yml
"$venv/bin/python" - deploy/gitlab/config.toml <<'PY'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
k = cfg["runners"][0]["kubernetes"]
assert cfg["runners"][0]["executor"] == "kubernetes", "executor"
assert k["privileged"] is False and k["allow_privilege_escalation"] is False, "privileges"
assert k["cap_drop"] == ["ALL"], "cap_drop"
assert sorted(k["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETFCAP", "SETGID", "SETUID"], "cap_add"
assert any(v["mount_path"] == "/cache" for v in k["volumes"]["pvc"]), "cache PVC"
print(f"{sys.argv[1]}: ok")
PY
