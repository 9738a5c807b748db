"""Shared pieces of the token scorers."""
from typing import Sequence

import torch
import torch.nn.functional as F

from ..utils import global_min_max


def eot_positions(text_ids: torch.Tensor) -> torch.Tensor:
    """``[B, N] -> [B]``: the EOT index (EOT has the largest id)."""
    return text_ids.argmax(dim=-1)


def content_mask(text_ids: torch.Tensor) -> torch.Tensor:
    """``[B, N] -> [B, N]`` bool: positions strictly between SOT and EOT."""
    positions = torch.arange(text_ids.shape[1], device=text_ids.device)
    return (positions > 0) & (positions < eot_positions(text_ids)[:, None])


def normalise_scores(raw: torch.Tensor, scope: str) -> torch.Tensor:
    """Min-max normalise ``[B, N]`` non-negative scores to [0, 1].

    ``scope='batch'`` uses the min and max of the whole batch (GA-DMS's
    released code; under DDP the global batch of every rank, so scores do
    not depend on the process count), ``'sample'`` those of each row. A
    constant range gives zeros.
    """
    if scope == 'batch':
        low, high = global_min_max(raw)
    elif scope == 'sample':
        low = raw.min(dim=1, keepdim=True)[0]
        high = raw.max(dim=1, keepdim=True)[0]
    else:
        raise ValueError(f"norm_scope must be 'batch' or 'sample', got "
                         f'{scope!r}')
    span = high - low
    return torch.where(span > 0, (raw - low) / span.clamp(min=1e-12),
                       torch.zeros_like(raw))


def multi_scale_pool(x: torch.Tensor, scales: Sequence[int]) -> torch.Tensor:
    """Multi-scale sequence pooling (MSP) of ``[..., N, C]`` features.

    For each scale ``c``: average consecutive blocks of ``c`` positions (a
    shorter tail becomes one more block), resize back to ``N`` positions
    with 1-D linear interpolation (``align_corners=False``); then average
    over the scales. Scale 1 is the identity.
    """
    *lead, length, channels = x.shape
    flat = x.reshape(-1, length, channels)
    pooled_sum = torch.zeros_like(flat)
    for scale in scales:
        if scale == 1:
            pooled_sum = pooled_sum + flat
            continue
        full = length // scale
        blocks = flat[:, :full * scale].reshape(-1, full, scale,
                                                channels).mean(dim=2)
        if length % scale:
            tail = flat[:, full * scale:].mean(dim=1, keepdim=True)
            blocks = torch.cat([blocks, tail], dim=1)
        resized = F.interpolate(
            blocks.transpose(1, 2), size=length, mode='linear',
            align_corners=False).transpose(1, 2)
        pooled_sum = pooled_sum + resized
    return (pooled_sum / len(scales)).reshape(*lead, length, channels)
