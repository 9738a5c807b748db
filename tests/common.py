"""Constants shared by the tests (importable: pytest puts this folder on
``sys.path`` for ``conftest.py``)."""
import os.path as osp

from gadms.datasets.transforms import (EOT_TOKEN_ID, MASK_TOKEN_ID,
                                       SOT_TOKEN_ID)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MASK, SOT, EOT = MASK_TOKEN_ID, SOT_TOKEN_ID, EOT_TOKEN_ID
