import random

import numpy as np
import torch
from mmengine.hooks import Hook

from gadms.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Store the random generators' states in checkpoints and restore them
    on resume, so a resumed run draws what the uninterrupted run would
    have drawn (augmentation in the main process, the data loader workers'
    base seeds, any ``torch.rand`` in the model).

    Saved: torch's CPU generator (and CUDA's, when present), numpy's and
    Python's global generators, as plain tensors, arrays and tuples, so the
    checkpoint still loads with ``weights_only=True``. The checkpoint is
    written by rank 0, whose states every rank restores. Loading weights
    without resuming (``load_from``) leaves the generators alone (it asks
    :attr:`GADMSRunner.resuming <gadms.engine.GADMSRunner.resuming>`, so
    the runner is gadms's, ``runner_type = 'GADMSRunner'``).

    Use in configs::

        custom_hooks = [dict(type='RandomStateHook')]
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['random_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('random_state')
        if state is None or not runner.resuming:
            return
        torch.set_rng_state(state['torch'])
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
