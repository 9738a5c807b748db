"""Resident memory of running processes, from Linux's ``/proc``: how the
corpus tests and benchmarks measure the driver and Ray's worker processes.

``VmHWM`` (peak, reset by ``clear_refs``) and ``VmRSS`` count the pages of
Ray's shared-memory object store that a process has touched; ``RssAnon``
is the process's own memory alone."""
import glob
import os
from typing import Dict, List


def _status_kib(pid: int, field: str) -> int:
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(f'/proc/{pid}/status has no {field}')


def ray_worker_pids() -> List[int]:
    """This user's Ray worker processes on this machine, which run the
    tasks and actors of every local node: ``default_worker.py`` when idle,
    retitled ``ray::<task or actor>`` while they work."""
    pids = []
    for path in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(path, 'rb') as f:
                command = f.read()
            is_worker = command.startswith(b'ray::') or \
                b'default_worker.py' in command
            if is_worker and os.stat(path).st_uid == os.getuid():
                pids.append(int(path.split('/')[2]))
        except OSError:  # the process has ended
            continue
    return sorted(pids)


def reset_peak(pids: List[int]) -> None:
    """Make each process's peak resident memory its current one."""
    for pid in pids:
        try:
            with open(f'/proc/{pid}/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            continue


def peak_mib(pids: List[int]) -> Dict[int, float]:
    """Peak resident memory (MiB) of each process still running."""
    peaks = {}
    for pid in pids:
        try:
            peaks[pid] = _status_kib(pid, 'VmHWM') / 1024
        except (OSError, KeyError):
            continue
    return peaks


def resident_mib(pids: List[int], field: str = 'VmRSS'
                 ) -> Dict[int, float]:
    """Current resident memory (MiB) of each process still running:
    ``VmRSS`` (all), or ``RssAnon`` (its own, without shared pages)."""
    current = {}
    for pid in pids:
        try:
            current[pid] = _status_kib(pid, field) / 1024
        except (OSError, KeyError):
            continue
    return current
