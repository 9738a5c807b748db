"""MMEngine's Runner with crash-safe checkpoints.

- Checkpoints are written to ``<name>.part`` and renamed, so a process
  killed while saving never leaves a truncated file under the real name.
- A checkpoint that cannot be read raises :class:`CheckpointError` naming
  the file (instead of a zip or pickle traceback); one holding objects
  outside the weights-only allow-list says how to load it if trusted.
- ``resume=True`` without a path picks the newest checkpoint of the work
  dir that is readable, saying which broken ones it skipped.
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from gadms.registry import RUNNERS

TRUST_HINT = ('if you trust its source, load it with --trust-checkpoint '
              '(unsafe: runs arbitrary pickled code)')


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be loaded."""


def is_readable_checkpoint(path: str) -> bool:
    """Whether ``path`` is a complete torch zip archive (CRCs checked)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _what_is_wrong(path: str) -> str:
    """Why a file that is not a readable checkpoint cannot be loaded."""
    if osp.getsize(path) == 0:
        return 'is empty'
    if not zipfile.is_zipfile(path):
        return ('is truncated or corrupt: not a torch checkpoint (zip '
                'archive)')
    return 'is truncated or corrupt'


def latest_readable_checkpoint(work_dir: str) -> Optional[str]:
    """The work dir's last checkpoint, or the newest readable one before
    it when it is truncated or corrupt (logged)."""
    last = find_latest_checkpoint(work_dir)
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                        key=osp.getmtime, reverse=True)
    if last is not None:
        candidates = [last] + [c for c in candidates
                               if osp.abspath(c) != osp.abspath(last)]
    for candidate in candidates:
        if is_readable_checkpoint(candidate):
            return candidate
        print_log(f'skipping checkpoint {candidate}: truncated or corrupt',
                  logger='current', level=logging.WARNING)
    return None


@RUNNERS.register_module()
class GADMSRunner(Runner):
    """:class:`mmengine.runner.Runner` with atomic checkpoint writes, clear
    errors for unreadable checkpoints and auto-resume that skips them.

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

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        try:
            return super().load_checkpoint(filename, *args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as err:  # torch/zip/pickle raise many kinds
            message = str(err)
            # a complete pickle that names a class outside the allow-list;
            # anything else that fails to parse is a broken file
            if 'Unsupported global' in message:
                raise CheckpointError(
                    f'checkpoint {filename} holds objects outside the '
                    f'weights-only allow-list; {TRUST_HINT}') from err
            if osp.isfile(filename) and not is_readable_checkpoint(
                    filename):
                first_line = (message.splitlines() or [''])[0]
                raise CheckpointError(
                    f'checkpoint {filename} {_what_is_wrong(filename)} '
                    f'({type(err).__name__}: {first_line})') from err
            raise

    def load_or_resume(self) -> None:
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = latest_readable_checkpoint(self.work_dir)
            if self._load_from is None:
                self._resume = False
                self.logger.info(f'no checkpoint to resume in '
                                 f'{self.work_dir}; starting afresh')
        super().load_or_resume()
