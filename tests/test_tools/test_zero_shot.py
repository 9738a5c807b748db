"""``tools/test.py CONFIG --pretrained CLIP``: CLIP weights evaluated
zero-shot, without a gadms checkpoint."""
import json

import torch
from common import run_tool
from mmengine.config import Config

from gadms.cli import register_all_modules
from gadms.registry import MODELS

CONFIG = 'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'
SMALL_TEST = ['test_dataloader.dataset.num_identities.test=6',
              'test_dataloader.num_workers=0',
              'test_dataloader.persistent_workers=False']


def _metrics(tmp_path, name: str, *weights: str) -> dict:
    out = str(tmp_path / f'{name}.json')
    result = run_tool('tools/test.py', CONFIG, *weights, '--out', out,
                      '--work-dir', str(tmp_path / name),
                      '--cfg-options', *SMALL_TEST)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out) as f:
        return json.load(f)


def test_pretrained_clip_scores_as_the_same_weights_in_a_checkpoint(
        tmp_path):
    register_all_modules()
    torch.manual_seed(3)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    clip = str(tmp_path / 'clip.pt')
    torch.save(model.backbone.clip.state_dict(), clip)  # a CLIP state dict
    checkpoint = str(tmp_path / 'gadms.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    torch.manual_seed(4)
    other = str(tmp_path / 'other.pt')
    torch.save(MODELS.build(Config.fromfile(CONFIG).model).backbone.clip
               .state_dict(), other)

    zero_shot = _metrics(tmp_path, 'zero-shot', '--pretrained', clip)
    assert zero_shot == _metrics(tmp_path, 'checkpoint', checkpoint)
    assert zero_shot != _metrics(tmp_path, 'other', '--pretrained', other)


def test_a_checkpoint_or_pretrained_weights_not_both(tmp_path):
    """Each mistake has its own message (neither used to say 'not
    both')."""
    neither = run_tool('tools/test.py', CONFIG)
    assert neither.returncode == 2
    assert 'give a checkpoint to test, or --pretrained CLIP weights' in \
        neither.stderr and 'not both' not in neither.stderr
    both = run_tool('tools/test.py', CONFIG, 'a.pth', '--pretrained', 'b.pt')
    assert both.returncode == 2
    assert 'give a checkpoint or --pretrained CLIP weights, not both' in \
        both.stderr
