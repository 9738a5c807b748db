"""A recipe's global batch, kept when the number of processes changes.

A recipe declares the global batch its learning rate and objective were
tuned for with MMEngine's ``auto_scale_lr = dict(base_batch_size=512)``.
Launched on ``W`` processes with a per-process ``batch_size`` of ``b``,
training trains a global batch of ``W x b``; when that is not the declared
one, :func:`fit_global_batch` applies the run's policy:

- ``'refuse'`` (the default): stop before training, saying which launch
  keeps the recipe;
- ``'scale_batch'`` (``tools/train.py --scale-batch``): a per-process batch
  of ``base_batch_size / W``, so the recipe is unchanged;
- ``'scale_lr'`` (``--auto-scale-lr``, MMEngine's own linear scaling):
  keep ``b`` and multiply the learning rate by ``W x b / base_batch_size``.

A config without ``auto_scale_lr`` declares nothing and runs on any count.
"""
import copy
import os
from typing import Optional, Tuple

GLOBAL_BATCH_POLICIES = ('refuse', 'scale_batch', 'scale_lr')


def world_size_from_env() -> int:
    """The process count a launcher announced (``torchrun``'s
    ``WORLD_SIZE``, Slurm's ``SLURM_NTASKS``), 1 without one: what a dry
    run checks before any process group exists."""
    for name in ('WORLD_SIZE', 'SLURM_NTASKS'):
        if os.environ.get(name):
            return int(os.environ[name])
    return 1


def fit_global_batch(train_dataloader: dict, auto_scale_lr: Optional[dict],
                     world_size: int, policy: str = 'refuse'
                     ) -> Tuple[dict, Optional[dict]]:
    """The train dataloader config and ``auto_scale_lr`` to run on
    ``world_size`` processes under ``policy`` (see the module docstring).

    Returns:
        tuple: ``(train_dataloader, auto_scale_lr)``, changed copies where
        the policy changes them.

    Raises:
        ValueError: the global batch differs and the policy is
            ``'refuse'``, the policy is unknown, or ``'scale_batch'`` cannot
            split the declared batch evenly over the processes.
    """
    if policy not in GLOBAL_BATCH_POLICIES:
        raise ValueError(f'global batch policy must be one of '
                         f'{GLOBAL_BATCH_POLICIES}, got {policy!r}')
    if not auto_scale_lr or 'base_batch_size' not in auto_scale_lr:
        return train_dataloader, auto_scale_lr
    declared = auto_scale_lr['base_batch_size']
    per_process = train_dataloader['batch_size']
    actual = world_size * per_process
    if policy == 'scale_lr' or auto_scale_lr.get('enable', False):
        return train_dataloader, _with(auto_scale_lr, enable=True)
    if actual == declared:
        return train_dataloader, auto_scale_lr
    if policy == 'refuse':
        raise ValueError(
            f'this recipe trains a global batch of {declared} '
            f'(auto_scale_lr.base_batch_size), but {world_size} process(es)'
            f' x batch_size {per_process} = {actual}. Launch '
            f'{_processes_for(declared, per_process)}, or pass --scale-batch'
            f' (batch_size {declared / world_size:g} per process, the same '
            f'recipe) or --auto-scale-lr (keep {actual} and scale the '
            f'learning rate by {actual / declared:g})')
    if declared % world_size:
        raise ValueError(
            f'--scale-batch: the global batch of {declared} does not split '
            f'evenly over {world_size} processes')
    return _with(train_dataloader,
                 batch_size=declared // world_size), auto_scale_lr


def _with(config: dict, **changes) -> dict:
    """A shallow copy of ``config`` (a dict or a ConfigDict) with
    ``changes``."""
    config = copy.copy(config)
    config.update(changes)
    return config


def _processes_for(declared: int, per_process: int) -> str:
    if declared % per_process:
        return f'a process count that divides {declared}'
    return f'{declared // per_process} process(es)'
