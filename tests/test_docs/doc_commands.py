"""Check the shell commands of the docs as written: training commands run
``tools/train.py --dry-run`` for their GPU count, every other gadms tool
parses its arguments, and the configs they name resolve."""
import os.path as osp
import re
import shlex
import sys

from common import REPO_ROOT, tool_module
from mmengine.config import Config

DOCS = osp.join(REPO_ROOT, 'docs')
TOOL = re.compile(r'^(?:python3? |\.venv/bin/python )?(tools/[\w/.-]+)')


def doc_commands(name: str) -> list:
    """The commands of ``docs/<name>``'s bash blocks (continued lines
    joined, comments dropped)."""
    with open(osp.join(DOCS, name), encoding='utf-8') as f:
        blocks = re.findall(r'```bash\n(.*?)```', f.read(), re.S)
    text = '\n'.join(blocks).replace('\\\n', ' ')
    commands = []
    for line in text.splitlines():
        line = line.split(' # ')[0].strip()
        if line and not line.startswith('#'):
            commands.append(line)
    return commands


def _dry_run(args: list, world_size: int, monkeypatch, capsys) -> str:
    monkeypatch.setenv('WORLD_SIZE', str(world_size))
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *args, '--dry-run'])
    tool_module('tools/train.py').main()
    return capsys.readouterr().out


def check_command(command: str, monkeypatch, capsys) -> None:
    """Fail unless ``command`` (run from the repository root) is a gadms
    tool invocation that parses, with configs that resolve."""
    words = shlex.split(command)
    if words[0] == 'sha256sum':  # the file the configs read
        pretrained = Config.fromfile(
            'configs/gadms/vitb16_webperson.py').model.backbone.pretrained
        assert words[1] == pretrained
        return
    if words[0] == 'tools/dist_train.sh':
        printed = _dry_run([words[1], *words[3:]], int(words[2]),
                           monkeypatch, capsys)
        assert 'train_dataloader' in printed
        return
    match = TOOL.match(command)
    assert match, f'a command the test does not know how to check: {command}'
    tool = match.group(1)
    args = words[words.index(tool) + 1:]
    if tool == 'tools/train.py':
        _dry_run(args, 1, monkeypatch, capsys)
        return
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    parsed = tool_module(tool).parse_args()
    config = getattr(parsed, 'config', None)
    if config and osp.isfile(config):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(getattr(parsed, 'cfg_options', None) or {})
