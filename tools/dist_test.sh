#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
"$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" "${@:4}"
