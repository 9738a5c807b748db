"""Run gadms's command-line tools in fresh processes without paying for
their imports each time.

Every tool imports torch, MMEngine, mmpretrain, open_clip and gadms: 3-4 s
per interpreter start on a 2-core machine, most of a tiny training or test
run. Scripts that run many tools one after another (the miniature
benchmark, the test suite) start them instead from a fork server
(``multiprocessing``'s ``forkserver`` context) that has imported
``TOOL_PRELOAD`` once. The server only imports, so every child starts with
fresh OpenMP thread pools, its own process state and its own exit code,
as a new interpreter would.

Differences from ``python TOOL ARGS``: warnings raised while the server
imported a module are not shown again (a check of the console at start-up
needs a new interpreter), and the caller's ``__main__`` module is imported
by the server once (guard its work with ``if __name__ == '__main__'``).
"""
import atexit
import multiprocessing
import os
import os.path as osp
import runpy
import sys
from typing import Optional, Sequence

TOOL_PRELOAD = ['__main__', 'torch', 'torchvision', 'open_clip',
                'mmengine.runner', 'mmpretrain', 'gadms.apis',
                'gadms.datasets', 'gadms.engine', 'gadms.evaluation',
                'gadms.models', 'gadms.cli']
_FORKS = multiprocessing.get_context('forkserver')


def _fork_server() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, told to preload ``TOOL_PRELOAD`` when its
    server starts (on the first tool started, not on import)."""
    _FORKS.set_forkserver_preload(TOOL_PRELOAD)
    return _FORKS


class ToolTimeout(RuntimeError):
    """A forked tool ran past its time limit and was killed."""


def _tool_child(argv: Sequence[str], cwd: str, env: dict, out: str,
                err: str) -> None:
    """Run ``python ARGV`` in this forked child: the script as
    ``__main__`` with its folder first on ``sys.path``, in ``cwd`` and
    ``env``, stdout appended to the file ``out`` and stderr to ``err``;
    exit handlers run as at interpreter exit (a Ray the tool started shuts
    down)."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, name in ((1, out), (2, err)):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    script = osp.abspath(argv[0])
    sys.argv = list(argv)
    sys.path.insert(0, osp.dirname(script))
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        # multiprocessing ends the child with os._exit, which skips the
        # exit handlers; CPython has no public call that runs them (a
        # private API, pinned in tests/test_testing/test_forked_tools.py)
        atexit._run_exitfuncs()


def start_forked_tool(argv: Sequence[str],
                      out: str,
                      err: Optional[str] = None,
                      cwd: Optional[str] = None,
                      env: Optional[dict] = None) -> multiprocessing.Process:
    """Start ``python ARGV`` (a script and its arguments) in a process
    forked from the preloaded server; returns the started
    ``multiprocessing.Process`` (``join``, ``kill``, ``exitcode``).

    Args:
        argv: The script's path (relative to ``cwd``) and its arguments.
        out: File that receives the tool's stdout (appended).
        err: File that receives its stderr (appended); ``out`` if None.
        cwd: Working directory of the tool; the caller's if None.
        env: The tool's environment; the caller's at the time of the call
            if None.
    """
    child = _fork_server().Process(target=_tool_child, args=(
        list(argv), cwd or os.getcwd(),
        dict(os.environ if env is None else env), out, err or out))
    child.start()
    return child


def run_forked_tool(argv: Sequence[str],
                    out: str,
                    err: Optional[str] = None,
                    cwd: Optional[str] = None,
                    timeout: Optional[float] = None,
                    env: Optional[dict] = None) -> int:
    """Run ``python ARGV`` like :func:`start_forked_tool` (same
    arguments) and return its exit status; past ``timeout`` seconds the
    tool is killed and ``ToolTimeout`` raised."""
    child = start_forked_tool(argv, out, err, cwd, env)
    child.join(timeout)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise ToolTimeout(f'{argv[0]} ran past {timeout} s and was killed')
    return child.exitcode
