"""MMEngine's Runner with crash-safe checkpoints and strict loading.

- Checkpoints are written to ``<name>.part`` and renamed, so a process
  killed while saving never leaves a truncated file under the real name.
- A checkpoint that cannot be read raises :class:`CheckpointError` naming
  the file and what is wrong with it; one that does not fit the model
  (missing, unexpected or wrongly shaped keys, or a gallery index) is
  refused unless the config sets ``load_partial=True`` (only for
  ``load_from``: a resume is always exact).
- Resume picks or checks its checkpoint and a killed save's ``*.part``
  files are removed (:mod:`gadms.engine.resume`); ``load_from`` without
  ``resume`` starts a new training from its weights.
- A save that fails (a full disk) removes its ``.part`` file and names the
  checkpoint and the free space; the previous checkpoint stays the last.
- One training per work dir: a second one is refused, naming the first
  (:class:`~gadms.engine.work_dir_lock.WorkDirLock`).
- A schedule shorter than its schedulers (``--cfg-options
  train_cfg.max_epochs=1`` on a config with a warm-up) runs: a scheduler
  that would start after the last epoch is dropped, and one that would end
  after it ends with it, each with a logged note
  (:mod:`gadms.engine.scheduler_fitting`).
- The console gets a short header; the environment, the full config and
  the hook order go to the run's log file only
  (:class:`~gadms.engine.log_filter.FileOnlyFilter`).
- MMEngine checkpoints load under torch's weights-only default
  (:mod:`gadms.common.checkpoint_compat`), from the runner's construction
  on.

MMEngine has no public extension point for some of this; the private
names the runner relies on are listed in docs/extending.md and pinned by
``tests/test_engine/test_mmengine_pins.py``.
- A recipe that declares its global batch (``auto_scale_lr``) is refused
  on a process count that would change it, unless the config's
  ``global_batch_policy`` scales the batch or the learning rate
  (:mod:`gadms.engine.global_batch`).
"""
import contextlib
import logging
import os.path as osp
import shutil
from typing import Union

from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from gadms.common.atomic import PART_SUFFIX, atomic_path
from gadms.common.checkpoint_compat import allow_mmengine_checkpoint_globals
from gadms.registry import RUNNERS
from .checkpoint_loading import (check_fit, load_into, model_state_dict,
                                 read_checkpoint)
from .global_batch import fit_global_batch
from .log_filter import FileOnlyFilter
from .resume import (check_resumable, latest_resumable_checkpoint,
                     remove_partial_files)
from .scheduler_fitting import fit_schedulers_to_training
from .work_dir_lock import WorkDirLock


@RUNNERS.register_module()
class GADMSRunner(Runner):
    """:class:`mmengine.runner.Runner` with atomic checkpoint writes,
    strict checkpoint loading with clear errors, and auto-resume from
    resumable checkpoints only (see the module docstring).

    Selected by ``runner_type = 'GADMSRunner'`` (``default_runtime.py``).
    """

    def __init__(self, *args, **kwargs) -> None:
        # resume and load_from read MMEngine checkpoints, and the runner's
        # own saves must pickle nothing the weights-only loader refuses
        allow_mmengine_checkpoint_globals()
        super().__init__(*args, **kwargs)
        log_file = osp.join(self.log_dir, f'{self.timestamp}.log')
        self.logger.info(
            f'{self.experiment_name}: {self.world_size} process(es), seed '
            f'{self.seed}, work dir {self.work_dir}; environment, config and '
            f'hook order in {log_file}')

    @property
    def resuming(self) -> bool:
        """Whether this run resumes a training (``resume=True``), for hooks
        that restore state only then."""
        return self._resume

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):  # the console
                handler.addFilter(FileOnlyFilter())
        return logger

    def save_checkpoint(self, out_dir: str, filename: str, *args,
                        **kwargs) -> None:
        if '://' in out_dir:
            super().save_checkpoint(out_dir, filename, *args, **kwargs)
            return
        path = osp.join(out_dir, filename)
        # only the main process writes; the others follow MMEngine's save
        # (its collective steps) with the same temporary name
        writing = atomic_path(path) if is_main_process() else (
            contextlib.nullcontext(path + PART_SUFFIX))
        try:
            with writing as part:
                super().save_checkpoint(out_dir, osp.basename(part), *args,
                                        **kwargs)
        except OSError as err:
            raise _save_error(err, path) from err

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

    def build_param_scheduler(self, scheduler: Union[dict, list]):
        """MMEngine's, on schedulers fitted to the training's length (the
        train loop is built when ``train`` calls this)."""
        return super().build_param_scheduler(self._fit_schedulers(scheduler))

    def _fit_schedulers(self, scheduler: Union[dict, list]):
        if isinstance(scheduler, dict) and 'type' not in scheduler:
            # one list of schedulers per optimizer
            return {name: self._fit_schedulers(value)
                    for name, value in scheduler.items()}
        return fit_schedulers_to_training(scheduler, self.max_epochs,
                                          self.max_iters)


def _save_error(err: OSError, path: str) -> OSError:
    """Describe a failed save (its ``.part`` file already removed) with the
    checkpoint's path and the free space of its disk."""
    folder = osp.dirname(path) or '.'
    free = shutil.disk_usage(folder).free
    return OSError(
        err.errno, f'could not save checkpoint {path} ({err.strerror or err};'
        f' {free / 2**20:.1f} MiB free on the disk of {folder}); the '
        'unfinished file was removed and the previous checkpoint stays the '
        'last', path)
