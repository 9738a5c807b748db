import os
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from gadms.models.score_bank import TokenScoreBank
from gadms.registry import HOOKS


@HOOKS.register_module()
class ScoreBankHook(Hook):
    """Give a GA-DMS model its token score bank and checkpoint it.

    Before training, a :class:`TokenScoreBank` sized to the training set
    (one row per caption, ``context_length`` scores) is attached to the
    model as ``score_bank``; its contents travel in checkpoints under
    ``'score_bank'``, so a resumed run masks with the scores it had.

    Args:
        context_length (int): Scores per caption (77).
        storage (str): Where the bank lives. ``'memory'`` (default): an
            anonymous shared mapping, gone with the process however it dies.
            ``'work_dir'``: files ``<work_dir>/score_bank/rank<r>.f16``
            (page cache that the kernel can write back under memory
            pressure); leftovers of a killed run of the same work dir are
            removed before training, and the files after it.
        path (str, optional): Instead, a file prefix of your own: each rank
            creates ``<path>.rank<r>`` (refused when it exists, never
            overwritten) and removes it after training.
        mode (str): ``'synced'`` (default): every rank reads every caption's
            latest scores; ``'per_group'``: the released code's per-GPU
            banks, a caption reads what its group of ``group_size``
            consecutive captions of the global batch last wrote (see
            :class:`TokenScoreBank`), for the staleness ablation.
        group_size (int, optional): Captions per group of ``'per_group'``
            (the released per-GPU batch); must divide the per-process
            batch.

    Use in configs::

        custom_hooks = [dict(type='ScoreBankHook')]
    """

    priority = 'NORMAL'

    def __init__(self,
                 context_length: int = 77,
                 storage: str = 'memory',
                 path: Optional[str] = None,
                 mode: str = 'synced',
                 group_size: Optional[int] = None) -> None:
        if storage not in ('memory', 'work_dir'):
            raise ValueError("storage must be 'memory' or 'work_dir', got "
                             f'{storage!r}')
        if mode not in ('synced', 'per_group'):
            raise ValueError("mode must be 'synced' or 'per_group', got "
                             f'{mode!r}')
        if mode == 'per_group' and group_size is None:
            raise ValueError("mode='per_group' needs a group_size")
        self.context_length = context_length
        self.storage = storage
        self.path = path
        self.group_size = group_size if mode == 'per_group' else None
        self._resumed_scores: Optional[torch.Tensor] = None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _bank_file(self, runner) -> Optional[str]:
        """This rank's backing file (None: anonymous memory)."""
        if self.path is not None:
            return f'{self.path}.rank{get_rank()}'
        if self.storage == 'memory':
            return None
        folder = osp.join(runner.work_dir, 'score_bank')
        os.makedirs(folder, exist_ok=True)
        path = osp.join(folder, f'rank{get_rank()}.f16')
        if osp.exists(path):  # this run's own name: left by a killed run
            os.remove(path)
            print_log(f'removed {path}, left by an interrupted run',
                      logger='current')
        return path

    def before_train(self, runner) -> None:
        model = self._model(runner)
        loader = runner.train_dataloader
        bank = TokenScoreBank(
            len(loader.dataset), self.context_length,
            init_value=model.score_init, path=self._bank_file(runner),
            group_size=self.group_size, batch_size=loader.batch_size)
        if self._resumed_scores is not None:
            bank.load_tensor(self._resumed_scores)
            self._resumed_scores = None
        model.score_bank = bank

    def after_run(self, runner) -> None:
        bank = getattr(self._model(runner), 'score_bank', None)
        if bank is not None:
            bank.close()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        bank = self._model(runner).score_bank
        if bank is not None:
            checkpoint['score_bank'] = bank.to_tensor()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'score_bank' not in checkpoint:
            return
        bank = self._model(runner).score_bank
        if bank is None:
            self._resumed_scores = checkpoint['score_bank']
        else:
            bank.load_tensor(checkpoint['score_bank'])
