"""Which checkpoint a training resumes from, and the leftovers of a save
that was killed.

- ``resume=True`` without a path picks the newest checkpoint of the work
  dir that can resume training (readable, with optimizer state), saying
  which ones it skipped; every rank resumes from rank 0's choice.
- A given path that cannot resume (e.g. a ``best_*.pth`` without optimizer
  state) is refused, naming the nearest checkpoint that can.
- ``*.part`` files of a save killed half-way are removed when the next
  training in the work dir starts.
"""
import glob
import logging
import os
import os.path as osp
from typing import Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.runner.checkpoint import find_latest_checkpoint

from gadms.common.atomic import PART_SUFFIX
from .checkpoint_loading import CheckpointError, has_training_state


def latest_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The work dir's last checkpoint, or else the newest one that can
    resume training (readable, with optimizer state); the ones skipped are
    logged. Rank 0 chooses and every rank gets its choice."""
    choice = [None]
    if is_main_process():
        choice[0] = _choose_resumable(work_dir)
    broadcast_object_list(choice)
    return choice[0]


def check_resumable(path: str) -> None:
    """Refuse to resume from a local ``path`` that holds no training state,
    naming the newest checkpoint of its folder that can resume.

    Raises:
        CheckpointError: ``path`` has no optimizer state or ``meta``, or
            cannot be read.
    """
    if '://' in path or not osp.isfile(path):
        return  # read (and its errors named) by load_checkpoint
    resumable, reason = has_training_state(path)
    if resumable:
        return
    nearest = _choose_resumable(osp.dirname(path) or '.', log=False)
    advice = (f'the newest checkpoint there that can resume is {nearest}'
              if nearest else 'no checkpoint in its folder can resume')
    raise CheckpointError(
        f'cannot resume from {path}: {reason}. A resume continues a '
        f'training exactly and needs the optimizer state; {advice}. To start '
        f'a new training from its weights, pass --load-from {path} (or set '
        'load_from without resume)')


def _choose_resumable(work_dir: str, log: bool = True) -> Optional[str]:
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
        if log:
            print_log(f'skipping checkpoint {candidate}: {reason}',
                      logger='current', level=logging.WARNING)
    return None


def remove_partial_files(folder: str) -> None:
    """Delete the ``*.part`` files a killed save left in ``folder`` (main
    process only; logged)."""
    if not is_main_process():
        return
    for part in sorted(glob.glob(osp.join(folder, '*' + PART_SUFFIX))):
        os.remove(part)
        print_log(f'removed {part}, left by an interrupted save',
                  logger='current', level=logging.WARNING)
