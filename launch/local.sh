#!/usr/bin/env bash
# Start a one-node Ray cluster here and submit a run to it, exactly as on a real cluster:
#   bash launch/local.sh --algo grpo train.steps=2
set -euo pipefail
cd "$(dirname "$0")/.."
# A throwaway single-user cluster on this machine: no token authentication between CLI and dashboard.
export RAY_AUTH_MODE=disabled
ray start --head --num-cpus "$(nproc)" --include-dashboard=true --dashboard-port 8265 >/dev/null
trap 'ray stop >/dev/null' EXIT
# Through submit.sh, so the upload leaves out exactly what it leaves out on a real cluster (.rayignore), and
# a relative output.dir (runs/ by default) lands in this checkout, not in Ray's copy of it.
# Not exec: the EXIT trap above must still stop the cluster when the job ends or fails.
RAY_ADDRESS=http://127.0.0.1:8265 bash launch/submit.sh "$@"
