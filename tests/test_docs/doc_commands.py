"""Check the shell commands of the docs as written: training commands run
``tools/train.py --dry-run`` for their GPU count, every other gadms tool
parses its arguments, and the configs they name resolve."""
import os.path as osp
import re
import shlex
import sys

from common import REPO_ROOT, dry_run_train, tool_module
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


def assert_dry_run_passes(printed: str) -> None:
    """The dry run found everything the launch needs: the sandbox holds the
    downloads of docs/reproduce.md; only a folder of the user's own that a
    doc names by an absolute path (``/data/my-cuhk``) may be missing."""
    missing = [line for line in printed.splitlines()
               if line.startswith('MISSING:')]
    assert all(' reads /' in line for line in missing), printed
    assert missing or 'dry run: OK' in printed, printed


def check_command(command: str, monkeypatch, capsys) -> None:
    """Fail unless ``command`` (run from the repository root) is a gadms
    tool invocation that parses, with configs that resolve."""
    words = shlex.split(command)
    # leading VAR=value assignments: the launch's environment
    env = {}
    while re.match(r'^\w+=', words[0]):
        key, value = words.pop(0).split('=', 1)
        env[key] = value
    command = shlex.join(words)
    if words[0] == 'sha256sum':  # the file the configs read
        pretrained = Config.fromfile(
            'configs/gadms/gadms_vit-b16_8xb64_webperson.py'
        ).model.backbone.pretrained
        assert words[1] == pretrained
        return
    if words[0] == 'tools/dist_train.sh':
        assert_dry_run_passes(dry_run_train([words[1], *words[3:]],
                                       int(words[2]), monkeypatch, capsys))
        return
    match = TOOL.match(command)
    assert match, f'a command the test does not know how to check: {command}'
    tool = match.group(1)
    args = words[words.index(tool) + 1:]
    if tool == 'tools/train.py':
        assert_dry_run_passes(dry_run_train(
            args, int(env.get('WORLD_SIZE', 1)), monkeypatch, capsys))
        return
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    parsed = tool_module(tool).parse_args()
    config = getattr(parsed, 'config', None)
    if config and osp.isfile(config):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(getattr(parsed, 'cfg_options', None) or {})
        if getattr(parsed, 'benchmark', None):  # one of the config's sets
            tool_module(tool).keep_benchmark(cfg, parsed.benchmark)
