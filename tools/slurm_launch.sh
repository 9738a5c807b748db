#!/usr/bin/env bash
# Shared by slurm_train.sh and slurm_test.sh:
#   tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT options]
# One task per GPU; MMEngine's slurm launcher reads the rank and world size
# from Slurm's environment (on CPU-only nodes the tools use gloo).
# Environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS,
# PYTHON (default: the repository's .venv/bin/python, else python3).
set -x

PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
ROOT="$(dirname "$0")/.."
source "$(dirname "$0")/project_python.sh"

PYTHONPATH="$ROOT":${PYTHONPATH:-} \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE:-8}" \
    --ntasks="${GPUS:-8}" \
    --ntasks-per-node="${GPUS_PER_NODE:-8}" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "$PYTHON" -u "$(dirname "$0")/${SCRIPT}" "${@:4}" --launcher slurm
