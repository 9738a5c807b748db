#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh:
#   tools/dist_launch.sh SCRIPT GPUS [SCRIPT arguments and options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
# Runs torch.distributed.run (torchrun) with the project's Python: $PYTHON
# if set, else the repository's .venv/bin/python, else python3 on PATH.
SCRIPT=$1
GPUS=$2
ROOT="$(dirname "$0")/.."
source "$(dirname "$0")/project_python.sh"

PYTHONPATH="$ROOT":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")/${SCRIPT}" \
    "${@:3}" --launcher pytorch
