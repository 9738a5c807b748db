"""One training per work dir: a lock file naming its holder.

Two trainings writing to one work dir overwrite each other's checkpoints
and ``last_checkpoint``. The main process of a training holds an exclusive
POSIX lock (``lockf``) on ``WORK_DIR/train.lock`` for as long as it trains;
the file names the holder (pid, host, start time, command line), so a
second training is refused with that name. The kernel drops the lock when
its process dies, however it dies, so a lock file left by a killed training
is taken over (with a warning naming the dead holder) instead of blocking
the work dir forever. A POSIX lock, unlike ``flock``, is not inherited by
forked children: data loader workers that outlive a killed training for a
moment do not keep its work dir locked.
"""
import datetime
import errno
import fcntl
import json
import logging
import os
import os.path as osp
import socket
import sys
from typing import Optional

from mmengine.logging import print_log

LOCK_NAME = 'train.lock'


class WorkDirLockedError(RuntimeError):
    """Another training holds the work dir."""


def _describe(holder: dict) -> str:
    return (f'pid {holder.get("pid", "?")} on host '
            f'{holder.get("host", "?")}, started {holder.get("started", "?")}'
            f' ({holder.get("command", "?")})')


def _read_holder(fd: int) -> Optional[dict]:
    """The holder record in the open lock file, None when empty or not
    one of ours."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode('utf-8', errors='replace')
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


class WorkDirLock:
    """An exclusive lock on a work dir for one training.

    Args:
        work_dir (str): The training's work dir (created if missing).

    Use::

        with WorkDirLock(runner.work_dir):
            ...  # train
    """

    def __init__(self, work_dir: str) -> None:
        self.path = osp.join(work_dir, LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock, or raise naming the training that holds it.

        Raises:
            WorkDirLockedError: a live process holds the lock.
        """
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                holder = _read_holder(fd) or {}
                os.close(fd)
                raise WorkDirLockedError(
                    f'work dir {osp.dirname(self.path)} is in use by another '
                    f'training ({_describe(holder)}; lock file {self.path});'
                    ' wait for it to finish, or train in another --work-dir'
                ) from None
            # the previous holder may have removed the file between our
            # open and lock: then the lock is on a deleted file; retry
            if os.fstat(fd).st_ino == _inode(self.path):
                break
            os.close(fd)
        stale = _read_holder(fd)
        if stale is not None:
            print_log(
                f'taking over the lock of a training that no longer runs '
                f'({_describe(stale)}; lock file {self.path})',
                logger='current', level=logging.WARNING)
        holder = dict(
            pid=os.getpid(), host=socket.gethostname(),
            started=datetime.datetime.now().isoformat(timespec='seconds'),
            command=' '.join(sys.argv))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self.fd is None:
            return
        if os.fstat(self.fd).st_ino == _inode(self.path):
            os.remove(self.path)
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self) -> 'WorkDirLock':
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _inode(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
