"""Atomic file writes: a temporary name, then a rename."""
import os
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a torn file at ``path``:
    the data goes to ``path + '.part'`` (removed if writing fails), which
    then replaces ``path`` in one rename."""
    part = f'{path}.part'
    try:
        torch.save(obj, part)
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)
