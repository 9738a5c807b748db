"""Consecutive row groups of the global batch.

The released GA-DMS code normalises token scores and averages the MTP loss
over each GPU's own batch. gadms reproduces that independently of the
process count by cutting the *global* batch (rank 0's rows, then rank 1's,
...) into consecutive groups of ``group_size`` rows: 8 processes x 64 rows
and 1 process x 512 rows both give 8 groups of 64.
"""
from typing import NamedTuple, Optional, Sequence

import torch
from mmengine.dist import get_rank, get_world_size


class RowGroups(NamedTuple):
    """Group ids of the rows of a global batch.

    ``local`` (``[B]``): the group of each of this rank's rows;
    ``all`` (``[W * B]``): the group of every row of the global batch, rank
    order; ``count``: the number of groups in the global batch.
    """

    local: torch.Tensor
    all: torch.Tensor
    count: int


def row_groups(batch_size: int, group_size: int,
               device: torch.device) -> RowGroups:
    """Split the global batch of ``world_size x batch_size`` rows into
    consecutive groups of ``group_size`` (the last one may be shorter).
    Every rank must hold ``batch_size`` rows, as for the gathered SDM."""
    if group_size < 1:
        raise ValueError(f'group_size must be >= 1, got {group_size}')
    world_size = get_world_size()
    all_groups = torch.arange(world_size * batch_size,
                              device=device) // group_size
    start = get_rank() * batch_size
    return RowGroups(all_groups[start:start + batch_size], all_groups,
                     int(all_groups[-1]) + 1)


def group_reduce(values: torch.Tensor, groups: torch.Tensor, count: int,
                 reduce: str) -> torch.Tensor:
    """Reduce ``values [R]`` into ``[count]`` by their group ids ``groups
    [R]`` with ``reduce`` (``'sum'``, ``'amin'`` or ``'amax'``)."""
    initial = {'sum': 0.0, 'amin': float('inf'), 'amax': float('-inf')}
    out = values.new_full((count, ), initial[reduce])
    return out.scatter_reduce(0, groups, values, reduce=reduce,
                              include_self=reduce == 'sum')


def check_norm_scope(scope: str, allowed: Sequence[str],
                     group_size: Optional[int]) -> None:
    """Raise a ValueError unless ``scope`` is one of ``allowed`` and a
    ``'group'`` scope has a ``group_size`` >= 1."""
    if scope not in allowed:
        raise ValueError(f'norm_scope must be one of {tuple(allowed)}, got '
                         f'{scope!r}')
    if scope == 'group' and (group_size is None or group_size < 1):
        raise ValueError("norm_scope='group' needs a group_size >= 1, got "
                         f'{group_size}')
