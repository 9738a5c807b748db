"""The config snippets, Python blocks and shell commands of configs.md,
get_started.md and datasets.md work as written: each assignment of a
config block, put in a config on top of a shipped GA-DMS config, resolves
and builds; get_started.md's inference block runs on a tiny model (its
``CONFIG`` and ``CHECKPOINT`` placeholders filled in); each shell command
is a gadms tool call that parses (training commands through
``tools/train.py --dry-run``), with the same placeholders filled in.
Usage synopses (``[--option]``) and set-up lines (make, pip) are not
commands."""
import ast
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from common import REPO_ROOT
from doc_commands import DOCS, check_command, doc_commands
from mmengine.config import Config

from gadms.cli import register_all_modules
from gadms.registry import DATA_SAMPLERS, MODELS, OPTIM_WRAPPERS

BASE = osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_synthperson.py')
# usage synopses and set-up lines, not commands to check
NOT_COMMANDS = re.compile(r'\[|^make |pip |-m venv')
TINY_CONFIG = 'configs/gadms/gadms_tiny_1xb64_synthperson.py'


def python_blocks(name: str) -> list:
    with open(osp.join(DOCS, name), encoding='utf-8') as f:
        return re.findall(r'```python\n(.*?)```', f.read(), re.S)


def config_snippets(name: str) -> list:
    """Each top-level assignment of ``docs/<name>``'s config blocks."""
    blocks = [b for b in python_blocks(name) if 'import' not in b]
    snippets = []
    for block in blocks:
        for node in ast.parse(block).body:
            if isinstance(node, ast.Assign):
                snippets.append(ast.get_source_segment(block, node))
    return snippets


SNIPPETS = config_snippets('configs.md') + config_snippets('datasets.md')


def test_the_docs_have_snippets():
    assert sum('scorer=' in s for s in SNIPPETS) == 3
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


@pytest.fixture
def placeholders(sandbox):
    """What the docs' ``CONFIG`` and ``CHECKPOINT`` stand for: a tiny
    GA-DMS config and a checkpoint of it; and the images the examples
    search (``my_images/``, ``person.jpg``) in the working directory."""
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    checkpoint = str(sandbox / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    (sandbox / 'my_images').mkdir()
    rng = np.random.default_rng(0)
    for name in ('my_images/a.jpg', 'my_images/b.jpg', 'my_images/c.jpg',
                 'person.jpg'):
        cv2.imwrite(str(sandbox / name),
                    rng.integers(0, 255, (96, 32, 3), dtype=np.uint8))
    return dict(CONFIG=TINY_CONFIG, CHECKPOINT=checkpoint)


def _filled(text: str, values: dict) -> str:
    return re.sub(r'\b(CONFIG|CHECKPOINT)\b', lambda m: values[m.group(1)],
                  text)


@pytest.mark.parametrize('command', COMMANDS)
def test_doc_command(command, placeholders, monkeypatch, capsys):
    check_command(_filled(command, placeholders), monkeypatch, capsys)


def test_get_started_inference_block_runs(placeholders):
    block, = [b for b in python_blocks('get_started.md')
              if 'TextPersonInferencer(CONFIG' in b]
    code = block.replace("device='cuda'", "device='cpu'")
    namespace = dict(placeholders)
    exec(compile(code, 'docs/get_started.md', 'exec'), namespace)
    hits = namespace['hits']
    assert len(hits[0]) == 3 and hits[0][0]['rank'] == 1
    assert osp.isfile('my_images.pth')
