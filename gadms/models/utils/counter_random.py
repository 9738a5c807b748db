"""Counter-based random numbers: a value is a hash of its keys.

Masks drawn this way depend on (seed, step, sample index, position) only,
not on which process draws them or how the global batch is split, so
training is the same on 1 or N processes. The hash is the 32-bit
"lowbias32" integer finaliser (C. Wellons), applied once per key and
evaluated in int64 so that no product overflows.
"""
from typing import Union

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``x * constant mod 2**32`` for ``0 <= x < 2**32`` in int64."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def keyed_hash(*keys: Union[int, torch.Tensor]) -> torch.Tensor:
    """32-bit hash (int64 tensor in ``[0, 2**32)``) of broadcastable keys;
    64-bit integer keys enter as their two 32-bit halves."""
    state = torch.zeros((), dtype=torch.int64)
    for key in keys:
        key = torch.as_tensor(key, dtype=torch.int64, device=state.device) \
            if not torch.is_tensor(key) else key.long()
        state = state.to(key.device)
        for half in (key & _MASK32, (key >> 32) & _MASK32):
            state = _mix32(state ^ half)
    return state


def keyed_uniform(*keys: Union[int, torch.Tensor]) -> torch.Tensor:
    """Float32 uniforms in ``[0, 1)`` (24 random bits), one per element of
    the broadcast keys."""
    return (keyed_hash(*keys) >> 8).float() / float(1 << 24)
