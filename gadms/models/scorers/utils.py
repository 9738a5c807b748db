"""Shared pieces of the token scorers."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..utils import (gather_constant, global_min_max, group_reduce,
                     row_groups)

NORM_SCOPES = ('batch', 'group', 'sample')


def eot_positions(text_ids: torch.Tensor) -> torch.Tensor:
    """``[B, N] -> [B]``: the EOT index (EOT has the largest id)."""
    return text_ids.argmax(dim=-1)


def content_mask(text_ids: torch.Tensor) -> torch.Tensor:
    """``[B, N] -> [B, N]`` bool: positions strictly between SOT and EOT."""
    positions = torch.arange(text_ids.shape[1], device=text_ids.device)
    return (positions > 0) & (positions < eot_positions(text_ids)[:, None])


def normalise_scores(raw: torch.Tensor, scope: str,
                     group_size: Optional[int] = None) -> torch.Tensor:
    """Min-max normalise ``[B, N]`` non-negative scores to [0, 1].

    ``scope='batch'`` uses the min and max of the whole batch (under DDP the
    global batch of every rank, so scores do not depend on the process
    count); ``'group'`` those of consecutive groups of ``group_size``
    captions of the global batch (see :mod:`gadms.models.utils.groups`):
    with ``group_size`` = the released per-GPU batch this is the released
    code's per-GPU normalisation, on any number of processes; ``'sample'``
    those of each row. A constant range gives zeros.
    """
    if scope == 'batch':
        low, high = global_min_max(raw)
    elif scope == 'group':
        low, high = _group_min_max(raw, group_size)
    elif scope == 'sample':
        low = raw.min(dim=1, keepdim=True)[0]
        high = raw.max(dim=1, keepdim=True)[0]
    else:
        raise ValueError(f'norm_scope must be one of {NORM_SCOPES}, got '
                         f'{scope!r}')
    span = high - low
    return torch.where(span > 0, (raw - low) / span.clamp(min=1e-12),
                       torch.zeros_like(raw))


def _group_min_max(raw: torch.Tensor, group_size: Optional[int]
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[B, 1]`` min and max of each row's group (rows of other ranks
    included: only the ``[B]`` row extremes are gathered)."""
    if group_size is None:
        raise ValueError("norm_scope='group' needs a group_size")
    groups = row_groups(raw.shape[0], group_size, raw.device)
    row_low = gather_constant(raw.detach().min(dim=1)[0])
    row_high = gather_constant(raw.detach().max(dim=1)[0])
    low = group_reduce(row_low, groups.all, groups.count, 'amin')
    high = group_reduce(row_high, groups.all, groups.count, 'amax')
    return low[groups.local, None], high[groups.local, None]


def rank_scores(raw: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Per-caption rank normalisation of ``[B, N]`` scores.

    Each content token (``content [B, N]`` bool) gets its rank among the
    caption's content tokens divided by their count minus one: the lowest
    scores 0, the highest 1, the others evenly spaced, whatever the raw
    distribution (ties share their mean rank). So a threshold ``t`` selects
    about a fraction ``t`` of every caption's tokens. Other positions and
    one-token captions score 0.
    """
    both = content[:, :, None] & content[:, None, :]
    below = ((raw[:, None, :] < raw[:, :, None]) & both).sum(dim=2)
    equal = ((raw[:, None, :] == raw[:, :, None]) & both).sum(dim=2)
    count = content.sum(dim=1, keepdim=True)
    ranks = below + (equal - 1) / 2
    return torch.where(content & (count > 1),
                       ranks / (count - 1).clamp(min=1),
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
