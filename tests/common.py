"""Constants shared by the tests (importable: pytest puts this folder on
``sys.path`` for ``conftest.py``)."""
import importlib.util
import os.path as osp
import struct
import subprocess
import sys
import tempfile
import zlib
from typing import Callable, Optional

import torch

from gadms.datasets.transforms import EOT_TOKEN_ID, MASK_TOKEN_ID, SOT_TOKEN_ID
from gadms.testing.forked_tools import ToolTimeout, run_forked_tool

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MASK, SOT, EOT = MASK_TOKEN_ID, SOT_TOKEN_ID, EOT_TOKEN_ID


def run_tool(*args: str, cwd: str = REPO_ROOT,
             timeout: Optional[float] = None,
             check: bool = False) -> subprocess.CompletedProcess:
    """``python ARGS`` (a script and its arguments) in ``cwd`` (the
    repository root by default), output captured: like ``subprocess.run``,
    but the process is forked from a server that has imported the tools'
    dependencies already (``gadms.testing.forked_tools``). Use
    :func:`run_fresh_tool` where the test is about a new interpreter
    (import-time behaviour and warnings)."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = osp.join(folder, 'out'), osp.join(folder, 'err')
        try:
            code = run_forked_tool(args, out, err, cwd=cwd, timeout=timeout)
        except ToolTimeout:
            raise subprocess.TimeoutExpired([sys.executable, *args],
                                            timeout) from None
        outputs = []
        for name in (out, err):
            with open(name, encoding='utf-8', errors='replace') as f:
                outputs.append(f.read())
    done = subprocess.CompletedProcess([sys.executable, *args], code,
                                       *outputs)
    if check:
        done.check_returncode()
    return done


def spawn_workers(worker: Callable, nprocs: int, args: tuple = ()) -> None:
    """``torch.multiprocessing.spawn(worker, args, nprocs, join=True)``,
    but the processes are forked from the tools' preloaded server
    (``gadms.testing.forked_tools``) instead of starting new interpreters
    that import torch and MMEngine each."""
    torch.multiprocessing.start_processes(worker, args=args, nprocs=nprocs,
                                          join=True,
                                          start_method='forkserver')


def run_fresh_tool(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root in a new interpreter,
    output captured."""
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def tool_module(path: str):
    """The tool script ``path`` (relative to the repository) imported as a
    module, to call its ``parse_args`` or ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool_main(path: str, *args: str) -> None:
    """Run the tool script ``path``'s ``main()`` in this process with
    ``args`` as its command line: no interpreter start-up and imports (3-4
    s per call). For tools whose printed output the test does not read and
    that start no Runner (the data converters)."""
    module = tool_module(path)
    argv, sys.argv = sys.argv, [path, *args]
    try:
        module.main()
    finally:
        sys.argv = argv


def pixel_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A 1-bit grey PNG of ``width`` x ``height`` zeros: tens of KB
    encoded, ``3 * width * height`` bytes once decoded as BGR."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return (struct.pack('>I', len(data)) + body +
                struct.pack('>I', zlib.crc32(body)))

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    idat = b''.join(compressor.compress(row) for _ in range(height))
    idat += compressor.flush()
    header = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
            chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def dry_run_train(args: list, world_size: int, monkeypatch, capsys) -> str:
    """``tools/train.py ARGS --dry-run`` on ``world_size`` processes: its
    summary, also when it exits non-zero."""
    monkeypatch.setenv('WORLD_SIZE', str(world_size))
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *args, '--dry-run'])
    try:
        tool_module('tools/train.py').main()
    except SystemExit as stop:
        printed = capsys.readouterr().out
        assert stop.code == 1 and 'dry run: FAILED' in printed, (
            f'{stop}\n{printed}')
        return printed
    return capsys.readouterr().out
