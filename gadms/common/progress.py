"""Progress for long loops outside the Runner, bounded in a log.

On a terminal, MMEngine's :class:`~mmengine.utils.ProgressBar` (redrawn in
place). Anywhere else (a pipe, a file, CI) a redrawn bar becomes one line
per update, so plain lines are printed instead, one each time another
``1 / max_lines`` of the work is done: at most ``max_lines`` lines
whatever the number of items.
"""
import sys
import time
from typing import Callable, Optional, TextIO


class Progress:
    """Count ``total`` items, showing progress as described above.

    Args:
        total (int): Items to process.
        title (str): What is being done, e.g. ``'encoding images'``.
        max_lines (int): Most lines written when not on a terminal.
        file (TextIO, optional): Where to write; ``sys.stdout`` by default.
        log (callable, optional): Instead, hand each plain line to this
            (e.g. a logger's ``info``); there is never a bar then.

    Example::

        >>> progress = Progress(len(paths), 'checking images')
        >>> for path in paths:
        ...     check(path)
        ...     progress.update()
        >>> progress.close()
    """

    def __init__(self,
                 total: int,
                 title: str = '',
                 max_lines: int = 10,
                 file: Optional[TextIO] = None,
                 log: Optional[Callable[[str], None]] = None) -> None:
        self.total, self.title, self.max_lines = total, title, max_lines
        self.file = file or sys.stdout
        self.log = log or self._write_line
        self.done = 0
        self._lines = 0
        self._start = time.monotonic()
        on_terminal = getattr(self.file, 'isatty', lambda: False)()
        self._bar = None
        if on_terminal and total and log is None:
            # imported here: a corpus driver in a pipe never loads MMEngine
            from mmengine.utils import ProgressBar
            self._bar = ProgressBar(total, file=self.file)

    def update(self, count: int = 1) -> None:
        """``count`` more items are done."""
        self.done += count
        if self._bar is not None:
            self._bar.completed += count - 1
            self._bar.update()
            return
        if not self.total:
            return
        # the line for each completed 1/max_lines of the work, once
        due = self.done * self.max_lines // self.total
        if due > self._lines:
            self._lines = due
            elapsed = time.monotonic() - self._start
            self.log(f'{self.title}: {self.done}/{self.total} '
                     f'({100 * self.done / self.total:.0f}%, '
                     f'{elapsed:.0f} s)')

    def _write_line(self, line: str) -> None:
        self.file.write(line + '\n')
        self.file.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._bar is not None:
            self.file.write('\n')
            self.file.flush()
