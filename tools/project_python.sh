# Sourced by dist_launch.sh and slurm_launch.sh (ROOT: the repository):
# sets PYTHON to the project's Python: $PYTHON if set, else the
# repository's .venv/bin/python, else python3 on PATH.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then
        PYTHON="$ROOT/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
