"""Every training launch written in README.md, docs/*.md and the configs'
comments passes the dry run as written, on the process count it launches
(``tools/dist_train.sh``: GPUS x NNODES; ``tools/slurm_train.sh``: GPUS,
8 by default; ``tools/train.py``: WORLD_SIZE, one by default), in a folder
that holds what docs/reproduce.md says to download."""
import glob
import os.path as osp
import re
import shlex

import pytest
from common import REPO_ROOT, dry_run_train
from doc_commands import assert_dry_run_passes

TINY_CONFIG = 'configs/gadms/gadms_tiny_1xb64_synthperson.py'
LAUNCH = re.compile(r'^((?:\w+=\S+ )*)((?:\.venv/bin/python |python3? )?'
                    r'tools/(?:dist_train\.sh|slurm_train\.sh|train\.py) .*)$')


def _bash_lines(path: str) -> list:
    with open(path, encoding='utf-8') as f:
        blocks = re.findall(r'```bash\n(.*?)```', f.read(), re.S)
    return '\n'.join(blocks).replace('\\\n', ' ').splitlines()


def _comment_lines(path: str) -> list:
    with open(path, encoding='utf-8') as f:
        return [line.lstrip('# ').rstrip() for line in f
                if line.startswith('#')]


def launches() -> list:
    """``(file, command)`` of every training launch."""
    found = []
    docs = [osp.join(REPO_ROOT, 'README.md')] + sorted(
        glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')))
    configs = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                               recursive=True))
    for path in docs + configs:
        lines = _bash_lines(path) if path.endswith('.md') \
            else _comment_lines(path)
        for line in lines:
            command = line.split(' # ')[0].strip()
            # usage synopses ([options]) are not launches
            if LAUNCH.match(command) and '[' not in command:
                found.append((osp.relpath(path, REPO_ROOT), command))
    return found


LAUNCHES = launches()


def world_and_args(command: str) -> tuple:
    """The process count a launch starts and tools/train.py's arguments."""
    env, rest = LAUNCH.match(command).groups()
    env = dict(pair.split('=', 1) for pair in env.split())
    words = shlex.split(rest.replace('CONFIG', TINY_CONFIG))
    script = next(w for w in words if w.startswith('tools/'))
    args = words[words.index(script) + 1:]
    if script == 'tools/dist_train.sh':
        return int(args[1]) * int(env.get('NNODES', 1)), [args[0], *args[2:]]
    if script == 'tools/slurm_train.sh':
        return int(env.get('GPUS', 8)), [args[2], '--work-dir', args[3],
                                        *args[4:]]
    return int(env.get('WORLD_SIZE', 1)), args


def test_the_launches_are_found():
    files = {path for path, _ in LAUNCHES}
    assert {'README.md', 'docs/distributed.md', 'docs/reproduce.md',
            'configs/gadms/gadms_vit-b16_8xb64_webperson.py'} <= files
    assert any(c.startswith('NNODES=2') for _, c in LAUNCHES)
    assert any('slurm_train.sh' in c for _, c in LAUNCHES)


@pytest.mark.parametrize('path,command', LAUNCHES,
                         ids=[f'{p}: {c}' for p, c in LAUNCHES])
def test_every_launch_passes_the_dry_run(path, command, sandbox,
                                         monkeypatch, capsys):
    world_size, args = world_and_args(command)
    # a checkpoint the user names to resume or start from is their own
    for option in ('--resume', '--load-from'):
        if option in args and len(args) > args.index(option) + 1:
            named = sandbox / args[args.index(option) + 1]
            named.parent.mkdir(parents=True, exist_ok=True)
            named.touch()
    assert_dry_run_passes(dry_run_train(args, world_size, monkeypatch, capsys))
