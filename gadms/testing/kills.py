"""Worker processes that die, as the OOM killer or a crashing decoder
would make them: for the tests of retries and resumption."""
import os
import signal


class KillsOnce:
    """Calls ``inner``; the first call in any process (a marker file says
    it happened) kills its own worker process instead."""

    def __init__(self, inner, marker: str) -> None:
        self.inner, self.marker = inner, marker

    def __call__(self, *args):
        try:
            open(self.marker, 'x').close()
        except FileExistsError:
            return self.inner(*args)
        kill_own_process()


def kill_own_process(*args) -> None:
    """SIGKILL the calling process (every call: a task no worker
    survives)."""
    os.kill(os.getpid(), signal.SIGKILL)
