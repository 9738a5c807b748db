import os.path as osp
import subprocess
import sys

import pytest
from common import REPO_ROOT, run_tool
from mmengine.config import Config

from gadms.registry import MODELS

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis_tools'))
from get_flops import measure  # noqa: E402  isort:skip


def test_tiny_image_encoder_matches_a_hand_count():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_synthperson.py'))
    rows = {name: (flops, params)
            for name, flops, params in measure(MODELS.build(cfg.model))}
    # configs/_base_/models/clip-sdm_tiny.py: width 128, 3 layers, 4 heads
    # of 32, MLP ratio 2, patch 8 on 96 x 32 (48 patches), embed dim 128
    tokens, width = 49, 128
    patch_embed = 48 * (3 * 8 * 8) * width
    per_layer = tokens * (4 * width * width + 2 * width * 2 * width) + \
        2 * 4 * tokens * tokens * 32
    projection = tokens * width * 128
    matmuls = patch_embed + 3 * per_layer + projection
    # the rest is layer norms and activations: a few % on top
    assert matmuls <= rows['image encoder'][0] <= 1.1 * matmuls
    assert set(rows) == {
        'image encoder', 'text encoder', 'MTP decoder (train)',
        'MTP vocabulary layer / masked token (train)'
    }
    # 128 -> 128 -> 49408 (+ layer norm and activation)
    assert rows['MTP vocabulary layer / masked token (train)'][0] == \
        pytest.approx(128 * 128 + 128 * 49408, rel=0.01)


def test_cli_prints_the_table_and_its_result_alone():
    result = run_tool('tools/analysis_tools/get_flops.py',
                      'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py',
                      check=True)
    lines = result.stdout.splitlines()
    assert any(line.startswith('| image encoder ') for line in lines)
    assert lines[-1].startswith('Retrieval cost per image + caption: ')
    assert 'FutureWarning' not in result.stderr  # fvcore's torch.jit


def _image_gflops(*options: str) -> float:
    out = subprocess.run(
        [sys.executable, 'tools/analysis_tools/get_flops.py',
         'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py', *options],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines()
               if line.startswith('| image encoder '))
    return float(row.split('|')[2])


def test_cli_takes_cfg_options():
    # one image layer instead of 3: about a third of the layer cost
    full = _image_gflops()
    one_layer = _image_gflops('--cfg-options',
                              'model.backbone.arch.vision_cfg.layers=1')
    assert 0.25 * full < one_layer < 0.5 * full
