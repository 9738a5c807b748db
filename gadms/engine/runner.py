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
  which ones it skipped; every rank resumes from rank 0's choice. A given
  path that cannot resume (e.g. a ``best_*.pth`` without optimizer state)
  is refused, naming the nearest checkpoint that can; ``load_from``
  without ``resume`` starts a new training from its weights.
- A save that fails (a full disk) removes its ``.part`` file and names the
  checkpoint and the free space; the previous checkpoint stays the last.
- One training per work dir: a second one is refused, naming the first
  (:class:`~gadms.engine.work_dir_lock.WorkDirLock`).
- A schedule shorter than its schedulers (``--cfg-options
  train_cfg.max_epochs=1`` on a config with a warm-up) runs: a scheduler
  that would start after the last epoch is dropped, and one that would end
  after it ends with it, each with a logged note.
- The console gets a short header; the environment, the full config and
  the hook order go to the run's log file only (``FileOnlyFilter``).
- A recipe that declares its global batch (``auto_scale_lr``) is refused
  on a process count that would change it, unless the config's
  ``global_batch_policy`` scales the batch or the learning rate
  (:mod:`gadms.engine.global_batch`).
"""
import contextlib
import copy
import glob
import logging
import os
import os.path as osp
import shutil
from typing import List, Optional, Union

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from gadms.registry import RUNNERS
from .checkpoint_loading import (CheckpointError, check_fit,
                                 has_training_state, load_into,
                                 model_state_dict, read_checkpoint)
from .global_batch import fit_global_batch
from .work_dir_lock import WorkDirLock


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
    for part in sorted(glob.glob(osp.join(folder, '*.part'))):
        os.remove(part)
        print_log(f'removed {part}, left by an interrupted save',
                  logger='current', level=logging.WARNING)


class FileOnlyFilter(logging.Filter):
    """Keep the Runner's once-per-run reports (the environment, the whole
    config, the hook order: hundreds of lines) and MMEngine's internal
    deprecation notices off the console; the log file's handler, which has
    no such filter, still writes them."""

    PREFIXES = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                'Hooks will be executed in the following order',
                # MMEngine's own deprecation notices, logged by its
                # checkpoint hook on every run (nothing for a user to do)
                '"FileClient" will be deprecated in future',
                '"HardDiskBackend" is the alias of "LocalBackend"')

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


@RUNNERS.register_module()
class GADMSRunner(Runner):
    """:class:`mmengine.runner.Runner` with atomic checkpoint writes,
    strict checkpoint loading with clear errors, and auto-resume from
    resumable checkpoints only (see the module docstring).

    Selected by ``runner_type = 'GADMSRunner'`` (``default_runtime.py``).
    """

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):  # the console
                handler.addFilter(FileOnlyFilter())
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        super()._log_env(env_cfg)
        log_file = osp.join(self.log_dir, f'{self.timestamp}.log')
        self.logger.info(
            f'{self.experiment_name}: {self.world_size} process(es), seed '
            f'{self.seed}, work dir {self.work_dir}; environment, config and '
            f'hook order in {log_file}')

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        if '://' in out_dir:
            super().save_checkpoint(out_dir, filename, *args, **kwargs)
            return
        part = f'{filename}.part'
        try:
            super().save_checkpoint(out_dir, part, *args, **kwargs)
        except OSError as err:
            raise _save_error(err, osp.join(out_dir, filename)) from err
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
        if isinstance(self._train_dataloader, dict):  # not yet built
            self._train_dataloader, self.auto_scale_lr = fit_global_batch(
                self._train_dataloader, self.auto_scale_lr, self.world_size,
                self.cfg.get('global_batch_policy', 'refuse'))
        lock = WorkDirLock(self.work_dir) if is_main_process() else (
            contextlib.nullcontext())
        with lock:
            # only a training writes checkpoints here; an evaluation sharing
            # the work dir must not touch a running training's .part file
            remove_partial_files(self.work_dir)
            return super().train()

    def load_or_resume(self) -> None:
        if self._resume and not self._has_loaded:
            if self._load_from is None:
                self._load_from = latest_resumable_checkpoint(self.work_dir)
            else:
                check_resumable(self._load_from)
            if self._load_from is None:
                self._resume = False
                self.logger.info(f'no checkpoint to resume in '
                                 f'{self.work_dir}; starting afresh')
        super().load_or_resume()

    def _build_param_scheduler(self, scheduler: Union[dict, list],
                               optim_wrapper) -> list:
        if isinstance(self._train_loop, BaseLoop):
            scheduler = fit_schedulers_to_training(
                scheduler, self.max_epochs, self.max_iters)
        return super()._build_param_scheduler(scheduler, optim_wrapper)


def fit_schedulers_to_training(schedulers: Union[dict, list],
                               max_epochs: int, max_iters: int) -> list:
    """Scheduler configs fitted to a training of ``max_epochs`` epochs
    (``max_iters`` iterations for iteration-based ones): one that begins
    at or after the end is dropped, one that ends after it is ended there
    (a warm-up longer than a smoke-test schedule); each change is logged.
    Built schedulers pass unchanged."""
    fitted: List = []
    for scheduler in schedulers if isinstance(schedulers, list) else [
            schedulers]:
        if not isinstance(scheduler, dict):
            fitted.append(scheduler)
            continue
        length = max_epochs if scheduler.get('by_epoch', True) else max_iters
        unit = 'epoch' if scheduler.get('by_epoch', True) else 'iteration'
        begin, end = scheduler.get('begin', 0), scheduler.get('end')
        if begin >= length:
            print_log(f'{scheduler["type"]} begins at {unit} {begin}, at or '
                      f'after the end of this {length}-{unit} training: '
                      'left out', logger='current', level=logging.WARNING)
            continue
        if end is not None and end > length:
            print_log(f'{scheduler["type"]} ends at {unit} {end}, after this '
                      f'{length}-{unit} training: ended at {length}',
                      logger='current', level=logging.WARNING)
            scheduler = dict(copy.deepcopy(scheduler), end=length)
        fitted.append(scheduler)
    return fitted


def _save_error(err: OSError, path: str) -> OSError:
    """Remove the ``.part`` file of a failed save and describe the failure
    with the checkpoint's path and the free space of its disk."""
    part = f'{path}.part'
    if is_main_process() and osp.lexists(part):
        os.remove(part)
    folder = osp.dirname(path) or '.'
    free = shutil.disk_usage(folder).free
    return OSError(
        err.errno, f'could not save checkpoint {path} ({err.strerror or err};'
        f' {free / 2**20:.1f} MiB free on the disk of {folder}); the '
        'unfinished file was removed and the previous checkpoint stays the '
        'last', path)
