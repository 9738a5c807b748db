"""Constants shared by the tests (importable: pytest puts this folder on
``sys.path`` for ``conftest.py``)."""
import os.path as osp
import subprocess
import sys

from gadms.datasets.transforms import (EOT_TOKEN_ID, MASK_TOKEN_ID,
                                       SOT_TOKEN_ID)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MASK, SOT, EOT = MASK_TOKEN_ID, SOT_TOKEN_ID, EOT_TOKEN_ID


def run_tool(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root, output captured."""
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)
