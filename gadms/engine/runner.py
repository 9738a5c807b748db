"""MMEngine's Runner with crash-safe checkpoints and strict loading.

- Checkpoints are written to ``<name>.part`` and renamed, so a process
  killed while saving never leaves a truncated file under the real name.
- A checkpoint that cannot be read raises :class:`CheckpointError` naming
  the file and what is wrong with it; one that does not fit the model
  (missing, unexpected or wrongly shaped keys, or a gallery index) is
  refused unless the config sets ``load_partial=True`` (only for
  ``load_from``: a resume is always exact).
- ``*.part`` files of a save killed half-way are removed when the next
  training in the work dir starts.
- ``resume=True`` without a path picks the newest checkpoint of the work
  dir that can resume training (readable, with optimizer state), saying
  which ones it skipped; every rank resumes from rank 0's choice.
"""
import glob
import logging
import os
import os.path as osp
from typing import Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from gadms.registry import RUNNERS
from .checkpoint_loading import (check_fit, has_training_state, load_into,
                                 model_state_dict, read_checkpoint)


def latest_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The work dir's last checkpoint, or else the newest one that can
    resume training (readable, with optimizer state); the ones skipped are
    logged. Rank 0 chooses and every rank gets its choice."""
    choice = [None]
    if is_main_process():
        choice[0] = _choose_resumable(work_dir)
    broadcast_object_list(choice)
    return choice[0]


def _choose_resumable(work_dir: str) -> Optional[str]:
    last = find_latest_checkpoint(work_dir)
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                        key=osp.getmtime, reverse=True)
    if last is not None:
        candidates = [last] + [c for c in candidates
                               if osp.abspath(c) != osp.abspath(last)]
    for candidate in candidates:
        resumable, reason = has_training_state(candidate)
        if resumable:
            return candidate
        print_log(f'skipping checkpoint {candidate}: {reason}',
                  logger='current', level=logging.WARNING)
    return None


def remove_partial_files(folder: str) -> None:
    """Delete the ``*.part`` files a killed save left in ``folder`` (main
    process only; logged)."""
    if not is_main_process():
        return
    for part in sorted(glob.glob(osp.join(folder, '*.part'))):
        os.remove(part)
        print_log(f'removed {part}, left by an interrupted save',
                  logger='current', level=logging.WARNING)


@RUNNERS.register_module()
class GADMSRunner(Runner):
    """:class:`mmengine.runner.Runner` with atomic checkpoint writes,
    strict checkpoint loading with clear errors, and auto-resume from
    resumable checkpoints only (see the module docstring).

    Selected by ``runner_type = 'GADMSRunner'`` (``default_runtime.py``).
    """

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        if '://' in out_dir:
            super().save_checkpoint(out_dir, filename, *args, **kwargs)
            return
        part = f'{filename}.part'
        super().save_checkpoint(out_dir, part, *args, **kwargs)
        if is_main_process():  # the only rank that writes
            os.replace(osp.join(out_dir, part), osp.join(out_dir, filename))

    def load_checkpoint(self, filename: str, map_location='cpu',
                        strict: bool = False,
                        revise_keys=((r'^module\.', ''), )) -> dict:
        """Load ``filename`` into the model, exactly; a partial load only
        for ``load_from`` with ``load_partial=True`` in the config (the
        ``strict`` argument of MMEngine's signature is implied)."""
        checkpoint = read_checkpoint(filename, map_location)
        state_dict = model_state_dict(checkpoint, filename, revise_keys)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        partial = (not strict and not self._resume
                   and self.cfg.get('load_partial', False))
        check_fit(model, state_dict, filename, partial)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        load_into(model, state_dict)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def train(self):
        # only a training writes checkpoints here; an evaluation sharing
        # the work dir must not touch a running training's .part file
        remove_partial_files(self.work_dir)
        return super().train()

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = latest_resumable_checkpoint(self.work_dir)
            if self._load_from is None:
                self._resume = False
                self.logger.info(f'no checkpoint to resume in '
                                 f'{self.work_dir}; starting afresh')
        super().load_or_resume()
