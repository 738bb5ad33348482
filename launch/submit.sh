#!/usr/bin/env bash
# Submit a training run to a running Ray cluster (RAY_ADDRESS or --address point at its dashboard):
#   RAY_ADDRESS=http://head:8265 bash launch/submit.sh --algo grpo train.steps=200 ray.rollout_workers=4
# The job joins the cluster through the RAY_ADDRESS that `ray job submit` sets for it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ray job submit --working-dir . -- python lenrl/train.py "$@"
