"""Let MMEngine 0.10.7 resume under torch >= 2.6 without unsafe unpickling.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, which
refuses any class it does not know. MMEngine 0.10.7 calls ``torch.load``
without the flag, and its checkpoints hold a ``message_hub`` made of
``HistoryBuffer`` objects (numpy arrays inside), so ``--resume`` fails with
"Unsupported global". Instead of loading arbitrary pickles, gadms

- allow-lists exactly the types MMEngine writes (``HistoryBuffer`` and the
  numpy array/scalar reconstructors), and
- stops ``HistoryBuffer`` from pickling its four built-in statistics
  functions, which pickle as ``getattr(HistoryBuffer, 'min')`` calls (and
  allowing ``getattr`` would open the door to any code). They are restored
  from the class on unpickling anyway; custom statistics registered by a
  user are still saved.
"""
from typing import List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_state(buffer: HistoryBuffer) -> dict:
    """``HistoryBuffer.__getstate__`` without the built-in statistics."""
    state = dict(buffer.__dict__)
    custom = {
        name: method
        for name, method in buffer._statistics_methods.items()
        if name not in _BUILTIN_STATISTICS
    }
    if custom:
        state['statistics_methods'] = custom
    else:
        state.pop('statistics_methods', None)
    return state


def mmengine_checkpoint_globals() -> List[object]:
    """The non-tensor types found in checkpoints that MMEngine writes
    (and numpy's generator state, which ``RandomStateHook`` adds)."""
    numpy_dtypes = {
        type(np.dtype(name))
        for name in ('float16', 'float32', 'float64', 'int32', 'int64',
                     'uint8', 'uint32', 'bool')
    }
    return [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        np._core.multiarray._reconstruct,
        np._core.multiarray.scalar,
        *numpy_dtypes,
    ]


def allow_mmengine_checkpoint_globals() -> None:
    """Make MMEngine's own checkpoints loadable with ``weights_only=True``.

    Called where gadms reads or writes them (the runner's construction,
    :func:`gadms.engine.checkpoint_loading.read_checkpoint`), never on
    import; calling it again changes nothing."""
    HistoryBuffer.__getstate__ = _history_buffer_state
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
