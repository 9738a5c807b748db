"""The config snippets and shell commands of configs.md, get_started.md and
datasets.md work as written: each assignment of a Python block, put in a
config on top of a shipped GA-DMS config, resolves and builds; each shell
command that names real files is a gadms tool call that parses (training
commands through ``tools/train.py --dry-run``)."""
import ast
import os.path as osp
import re

import pytest
from common import REPO_ROOT
from doc_commands import DOCS, check_command, doc_commands
from mmengine.config import Config

from gadms.registry import DATA_SAMPLERS, MODELS, OPTIM_WRAPPERS
from gadms.utils import register_all_modules

BASE = osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_synthperson.py')
# usage synopses and set-up lines, not commands to check
NOT_COMMANDS = re.compile(r'CONFIG|CHECKPOINT|\[|^make |pip |-m venv')


def config_snippets(name: str) -> list:
    """Each top-level assignment of ``docs/<name>``'s Python blocks."""
    with open(osp.join(DOCS, name), encoding='utf-8') as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    snippets = []
    for block in blocks:
        for node in ast.parse(block).body:
            if isinstance(node, ast.Assign):
                snippets.append(ast.get_source_segment(block, node))
    return snippets


SNIPPETS = config_snippets('configs.md') + config_snippets('datasets.md')


def test_the_docs_have_snippets():
    assert sum('scorer=' in s for s in SNIPPETS) == 2
    assert any('IdentityBalancedSampler' in s for s in SNIPPETS)


@pytest.mark.parametrize('snippet', SNIPPETS)
def test_config_snippet_builds(snippet, tmp_path):
    register_all_modules()
    path = tmp_path / 'snippet.py'
    path.write_text(f'_base_ = [{BASE!r}]\n{snippet}\n')
    cfg = Config.fromfile(str(path))
    assigned = ast.parse(snippet).body[0].targets[0].id
    if assigned == 'model':
        if 'checkpoints/' in snippet:  # weights this machine does not have
            assert cfg.model.backbone.type == 'TransformersCLIPBackbone'
            return
        MODELS.build(cfg.model)
    elif assigned == 'train_dataloader':
        assert DATA_SAMPLERS.get(cfg.train_dataloader.sampler.type)
    elif assigned == 'optim_wrapper':
        assert OPTIM_WRAPPERS.get(cfg.optim_wrapper.type)
    else:
        raise AssertionError(f'no check for a snippet that sets {assigned}')


COMMANDS = [c for name in ('get_started.md', 'datasets.md', 'configs.md')
            for c in doc_commands(name) if not NOT_COMMANDS.search(c)]


def test_the_docs_have_commands():
    assert any('tools/train.py' in c for c in COMMANDS)
    assert any('tools/dist_train.sh' in c for c in COMMANDS)


@pytest.mark.parametrize('command', COMMANDS)
def test_doc_command(command, sandbox, monkeypatch, capsys):
    check_command(command, monkeypatch, capsys)
