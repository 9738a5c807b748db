"""Every command of docs/reproduce.md works as written: training commands
pass ``tools/train.py --dry-run`` for their GPU count (the config resolves
and the recipe's global batch fits the launch), every other tool accepts
its arguments and the configs named resolve."""
import importlib.util
import os
import os.path as osp
import re
import shlex
import sys

import pytest
from common import REPO_ROOT
from mmengine.config import Config, DictAction

DOC = osp.join(REPO_ROOT, 'docs', 'reproduce.md')
TOOL = re.compile(r'^(?:python )?(tools/[\w/.-]+)')


def doc_commands() -> list:
    """The commands of the doc's bash blocks (continued lines joined)."""
    with open(DOC, encoding='utf-8') as f:
        blocks = re.findall(r'```bash\n(.*?)```', f.read(), re.S)
    text = '\n'.join(blocks).replace('\\\n', ' ')
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def _tool_module(path: str):
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with the repository's configs and the work dir
    of a finished pretraining run (for --paper-protocol fine-tuning)."""
    os.symlink(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    for run in ('vitb16_webperson', 'vitb16_webperson-1m'):
        folder = tmp_path / 'work_dirs' / run
        folder.mkdir(parents=True)
        (folder / 'best_CUHK-PEDES_t2i_R1_epoch_21.pth').touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    monkeypatch.delenv('SLURM_NTASKS', raising=False)
    return tmp_path


def _dry_run(args: list, world_size: int, monkeypatch, capsys) -> str:
    monkeypatch.setenv('WORLD_SIZE', str(world_size))
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *args, '--dry-run'])
    _tool_module('tools/train.py').main()
    return capsys.readouterr().out


def _check(command: str, monkeypatch, capsys) -> None:
    words = shlex.split(command)
    if words[0] == 'sha256sum':  # the file the configs read
        pretrained = Config.fromfile(
            'configs/gadms/vitb16_webperson.py').model.backbone.pretrained
        assert words[1] == pretrained
        return
    if words[0] == 'tools/dist_train.sh':
        printed = _dry_run([words[1], *words[3:]], int(words[2]),
                           monkeypatch, capsys)
        assert 'auto_scale_lr' in printed
        return
    tool = TOOL.match(command).group(1)
    if tool == 'tools/train.py':
        _dry_run(words[2:], 1, monkeypatch, capsys)
        return
    monkeypatch.setattr(sys, 'argv', [tool, *words[2:]])
    args = _tool_module(tool).parse_args()
    if tool == 'tools/test.py':
        cfg = Config.fromfile(args.config)
        cfg.merge_from_dict(args.cfg_options or {})


def test_the_doc_has_a_command_per_row():
    commands = doc_commands()
    configs = {w for c in commands for w in shlex.split(c)
               if w.startswith('configs/')}
    for row in range(1, 8):
        assert any(f'ablations/row{row}_' in c for c in configs)
    for name in ('vitb16_webperson.py', 'vitb16_webperson-1m.py',
                 'vitb16_webperson-100k.py', 'vitb16_webperson_coderecipe.py',
                 'vitb16_finetune_cuhk-pedes.py',
                 'vitb16_finetune_icfg-pedes.py',
                 'vitb16_finetune_rstpreid.py'):
        assert f'configs/gadms/{name}' in configs


@pytest.mark.parametrize('command', doc_commands())
def test_doc_command(command, sandbox, monkeypatch, capsys):
    assert command.startswith(('tools/', 'python tools/', 'sha256sum ')), (
        f'a command the test does not know how to check: {command}')
    _check(command, monkeypatch, capsys)


def test_dict_action_reads_none_as_none():
    """The IRRA-from-CLIP command's ``load_from=None`` clears the
    checkpoint (the backbone then loads the OpenAI weights)."""
    assert DictAction._parse_iterable('None') is None
