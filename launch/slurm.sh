#!/usr/bin/env bash
# Train on a Slurm allocation: one Ray node per Slurm node, the driver on the first (head) node.
#   sbatch launch/slurm.sh --algo dler output.dir=/shared/lenrl-runs ray.rollout_workers=8 ...
#   sbatch --nodes=4 --gpus-per-node=4 launch/slurm.sh --algo dler ...      # sbatch options override the header
# Submit from the repository root: every argument goes to lenrl/train.py. The checkout and its Python
# environment must sit on storage every node mounts at the same path (the usual cluster home or project
# filesystem): the driver runs here, and the actors on the other nodes import lenrl from this same path.
#
# Why the driver runs here instead of through `ray job submit`: the checkout is already on every node, so
# packaging and uploading it buys nothing; run directly, the driver's output goes to the Slurm output file,
# its exit status becomes the Slurm job's, and this script can hand it a SIGTERM while Ray is still up.
# On SIGTERM lenrl writes a checkpoint of the last finished step and exits (lenrl/trainer/loop.py); that
# needs the learner actors alive, but Slurm's own stop (plain scancel, the time limit) signals every Ray
# process at the same moment. Hence: 300 s before the time limit Slurm sends SIGUSR1 to this shell only
# (--signal below); the shell passes one SIGTERM to the driver, waits for it, and only then stops Ray. To
# stop a run early and keep its checkpoint, do the same by hand: scancel --batch --signal=USR1 JOBID.
#
# Defaults, one Ray node per Slurm node (change them here or on the sbatch command line):
#SBATCH --job-name=lenrl
#SBATCH --nodes=2
# one task per node: the Ray daemon (head or worker); Ray schedules the GPUs and CPUs among the actors
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
# whole nodes: Ray assumes it owns its nodes (fixed ports, /dev/shm for the object store, all the memory)
#SBATCH --exclusive
#SBATCH --mem=0
#SBATCH --time=12:00:00
# SIGUSR1 to this shell only ("B:"), 300 s before the time limit: the driver's time to write a checkpoint
#SBATCH --signal=B:USR1@300
# relative to the directory sbatch ran in; .rayignore keeps these out of `ray job submit` uploads
#SBATCH --output=lenrl-slurm-%j.out
set -euo pipefail

die() {
  echo "launch/slurm.sh: $*" >&2
  exit 2
}

# sbatch runs a spooled copy of this file, so $0 does not point into the checkout: work in the directory
# sbatch was called from (or LENRL_ROOT).
cd "${LENRL_ROOT:-${SLURM_SUBMIT_DIR:-.}}"
[[ -f lenrl/train.py ]] || die "$PWD is not a lenrl checkout: run sbatch from the repository root or set LENRL_ROOT"
[[ -n "${SLURM_JOB_NODELIST:-}" ]] || die "not inside a Slurm allocation: submit this script with sbatch"

# The run directory is written by the driver (metrics) and by the learner actors (checkpoints), which may sit
# on any node and do not share the driver's working directory: it must be an absolute path on shared
# storage, or a URI (s3://bucket/runs: each process uploads its own files). lenrl applies overrides in order,
# so the last output.dir= argument is the one that counts.
out_dir=""
config_given=0
for arg in "$@"; do
  case "$arg" in
    output.dir=*) out_dir=${arg#output.dir=} ;;
    --config | --config=*) config_given=1 ;;
  esac
done
overrides=()
if [[ -n "$out_dir" && "$out_dir" != /* && "$out_dir" != *://* ]]; then
  die "output.dir=$out_dir is relative: give an absolute path on storage every node reaches, or a URI"
elif [[ -z "$out_dir" && "$config_given" == 0 ]]; then
  # Nothing sets it, so the default runs/ applies: make it absolute (this checkout is shared, see above).
  overrides=("output.dir=$PWD/runs")
elif [[ -z "$out_dir" ]]; then
  echo "launch/slurm.sh: no output.dir= argument: the --config file's must be an absolute path on shared storage or a URI" >&2
fi

port=${LENRL_RAY_PORT:-6379}
wait_s=${LENRL_RAY_WAIT_S:-300}
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
((${#nodes[@]} > 0)) || die "scontrol returned no hosts for SLURM_JOB_NODELIST=$SLURM_JOB_NODELIST"
head_node=${nodes[0]}
cpus=${SLURM_CPUS_PER_TASK:-$(nproc)}

# srun no longer passes --cpus-per-task on to its steps (Slurm 22.05+), so both are given explicitly, and Ray
# is told the same counts instead of detecting the whole machine. --block keeps each `ray start` in the
# foreground of its srun step: Slurm then tracks the Ray processes, and a SIGTERM to the step stops them.
step_opts=(--ntasks-per-node=1 --cpus-per-task="$cpus")
ray_opts=(--num-cpus="$cpus" --disable-usage-stats --block)
if [[ -n "${SLURM_GPUS_PER_NODE:-}" ]]; then
  step_opts+=(--gpus-per-node="$SLURM_GPUS_PER_NODE")
  ray_opts+=(--num-gpus="${SLURM_GPUS_PER_NODE##*:}") # the count of a typed request such as h100:8
fi
# Without a GPU request in the header (e.g. --gres instead), Ray counts the GPUs in the CUDA_VISIBLE_DEVICES
# that Slurm sets for each step.

# The address the workers and the driver use. `hostname --ip-address` can name several addresses, or
# 127.0.1.1 on hosts whose /etc/hosts maps their own name there; LENRL_HEAD_IP picks one by hand (for
# example the address on the fast interconnect). This runs before the head's step takes the node's CPUs.
head_ip=${LENRL_HEAD_IP:-$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address | awk '{print $1}')}
[[ -n "$head_ip" && "$head_ip" != 127.* ]] || die "no usable address for $head_node ('$head_ip'): set LENRL_HEAD_IP"
addr="$head_ip:$port"

head_pid=""
worker_pid=""
stop_step() { # stop_step PID: SIGTERM the srun (forwarded to `ray start --block`), bounded wait, then SIGKILL
  local pid=$1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  # bounded (60 s), so that a hung node cannot hold the allocation until its time limit
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true # (no `wait`: see on_signal)
}
# Workers first: they report to the head while they drain.
trap 'stop_step "$worker_pid"; stop_step "$head_pid"' EXIT
# SIGUSR1, SIGTERM or SIGINT to this shell: pass one SIGTERM to the driver, wait while it checkpoints and
# exits, then exit 143 (what lenrl itself returns when SIGTERM stops it); the EXIT trap stops Ray after
# that. Polled with kill -0, not `wait`: under bash 5.2, `wait` in a trap was seen to block for good on a
# child that died just as the trap began. Before the driver starts: just exit, which also runs the EXIT trap (bash skips
# it when an untrapped signal kills the shell).
driver_pid=""
on_signal() {
  if [[ -n "$driver_pid" ]]; then
    kill -TERM "$driver_pid" 2>/dev/null || true
    while kill -0 "$driver_pid" 2>/dev/null; do sleep 0.5; done
  fi
  exit 143
}
trap on_signal TERM INT USR1

# Alive Ray nodes in the cluster at $addr (0 while it cannot be reached). ray.nodes() is public API, where
# `ray status` output is meant for people. `timeout`: ray.init retries an unreachable address for minutes.
alive_nodes() {
  local out
  out=$(timeout 60 python -c '
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(sum(1 for node in ray.nodes() if node["Alive"]))
' "$addr" 2>/dev/null) || out=0
  out=${out##*$'\n'} # the count is the last line, whatever ray.init printed before it
  [[ "$out" =~ ^[0-9]+$ ]] && echo "$out" || echo 0
}
# wait_nodes N: poll until N nodes are alive; fail fast if a `ray start` step exits, or after wait_s seconds.
wait_nodes() {
  local want=$1 deadline=$((SECONDS + wait_s)) pid
  until (($(alive_nodes) >= want)); do
    for pid in $head_pid $worker_pid; do
      kill -0 "$pid" 2>/dev/null || die "a ray start step (srun pid $pid) exited; its output is above"
    done
    ((SECONDS < deadline)) || die "only $(alive_nodes) of $want Ray nodes alive at $addr after ${wait_s}s"
    sleep 5
  done
}

echo "launch/slurm.sh: Ray head on $head_node ($addr), ${#nodes[@]} node(s)"
srun --nodes=1 --ntasks=1 -w "$head_node" "${step_opts[@]}" \
  ray start --head --node-ip-address="$head_ip" --port="$port" "${ray_opts[@]}" &
head_pid=$!
# The head first: workers that start before its GCS answers give up after a while.
wait_nodes 1
if ((${#nodes[@]} > 1)); then
  srun --nodes=$((${#nodes[@]} - 1)) --ntasks=$((${#nodes[@]} - 1)) --exclude="$head_node" "${step_opts[@]}" \
    ray start --address="$addr" "${ray_opts[@]}" &
  worker_pid=$!
fi
wait_nodes "${#nodes[@]}"

# lenrl/train.py joins the cluster named by RAY_ADDRESS (a GCS address: the driver runs on a cluster node).
export RAY_ADDRESS=$addr
# In the background with `wait`, so that a signal to this shell runs on_signal at once: bash runs traps only
# between commands, and a foreground driver would postpone it until the driver had exited. The driver
# ignores SIGUSR1 (`trap ''` is inherited): where `scancel --batch` signals the shell's children too, it
# still gets a single SIGTERM, from on_signal; a second one stops lenrl at once, without a checkpoint
# (lenrl.errors.interrupt_on_signals).
trap '' USR1
python lenrl/train.py "${overrides[@]}" "$@" &
driver_pid=$!
trap on_signal USR1
wait "$driver_pid"
