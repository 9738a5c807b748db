from typing import Optional

from mmengine.hooks import Hook

from gadms.common.progress import Progress
from gadms.registry import HOOKS


@HOOKS.register_module()
class EvalProgressHook(Hook):
    """Log how far validation and testing have got.

    MMEngine's :class:`~mmengine.hooks.LoggerHook` logs evaluation batches
    only every ``interval`` iterations, so a test set of fewer batches shows
    nothing until its metrics. This hook logs a plain line each time another
    ``1 / max_lines`` of the batches is done (batches done, percentage,
    seconds), at most ``max_lines`` lines per evaluation.

    Args:
        max_lines (int): Lines per validation or test run.

    Use in configs::

        default_hooks = dict(eval_progress=dict(type='EvalProgressHook'))
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, max_lines: int = 10) -> None:
        self.max_lines = max_lines
        self._progress: Optional[Progress] = None

    def _start(self, runner, loader, title: str) -> None:
        self._progress = Progress(len(loader), title, self.max_lines,
                                  log=runner.logger.info)

    def _step(self) -> None:
        if self._progress is not None:
            self._progress.update()

    def before_val_epoch(self, runner) -> None:
        self._start(runner, runner.val_dataloader, 'validation batches')

    def before_test_epoch(self, runner) -> None:
        self._start(runner, runner.test_dataloader, 'test batches')

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._step()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._step()
