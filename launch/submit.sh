#!/usr/bin/env bash
# Submit a training run to a running Ray cluster (RAY_ADDRESS points at its dashboard):
#   RAY_ADDRESS=http://head:8265 bash launch/submit.sh --algo grpo train.steps=200 ray.rollout_workers=4
# The job joins the cluster through the RAY_ADDRESS that `ray job submit` sets for it. Every argument goes
# to lenrl/train.py. The driver runs in a copy of this checkout on the head node; a relative output.dir is
# resolved against this directory (passed as $LENRL_SUBMIT_DIR) when the head reaches it, and refused
# otherwise. On a cluster give an absolute output.dir on storage every node reaches (docs/launch.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# --working-dir . zips this checkout and unpacks it on every node. .rayignore lists what must stay out
# (runs/, caches, .git, virtual environments, build outputs). Ray reads .rayignore itself only in releases
# since late 2025 (ray-project/ray#58500), and .gitignore only while RAY_RUNTIME_ENV_IGNORE_GITIGNORE is not
# 1, so the same patterns also go in as runtime_env "excludes", which every Ray this project supports
# (ray>=2.40 in pyproject.toml) honours.
# Python builds the JSON so that no pattern or path needs shell or JSON quoting by hand.
runtime_env=$(python -c '
import json, sys
lines = [line.strip() for line in open(sys.argv[1], encoding="utf-8")]
excludes = [p for p in lines if p and not p.startswith("#")]
print(json.dumps({"excludes": excludes, "env_vars": {"LENRL_SUBMIT_DIR": sys.argv[2]}}))
' .rayignore "$PWD")
exec ray job submit --working-dir . --runtime-env-json "$runtime_env" -- python lenrl/train.py "$@"
