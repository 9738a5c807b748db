import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import torch
from common import EOT, REPO_ROOT, SOT
from mmengine.config import Config

from gadms.datasets.transforms import get_tokenizer
from gadms.registry import MODELS
from gadms.visualization.token_scores import draw_token_scores, word_rows


def test_pieces_merge_into_words_with_their_scores():
    tokenizer = get_tokenizer()
    ids = tokenizer(['jekyll wears red'])[0]
    # SOT, jek, yll, wears, red, EOT
    assert ids[:6].tolist()[0] == SOT and ids[5] == EOT
    scores = np.array([0.0, 0.2, 0.7, 0.05, 0.9, 0.0] + [0.0] * 71)
    noise = (1 - scores) > 0.9
    informative = scores > 0.1
    rows = word_rows(tokenizer.words(ids), scores, noise, informative)
    assert rows == [
        dict(text='jekyll', score=0.7, noise=False, informative=True),
        dict(text='wears', score=0.05, noise=True, informative=False),
        dict(text='red', score=0.9, noise=False, informative=True),
    ]
    picture = draw_token_scores(np.zeros((128, 48, 3), np.uint8), rows)
    # the most informative word sits on an almost pure red background
    fade = int(round(255 * (1 - 0.9)))
    assert (np.all(picture == (fade, fade, 255), axis=2)).sum() > 100


def _tool(config: str, checkpoint: str, *options: str
          ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, 'tools/analysis_tools/visualize_token_scores.py',
         config, checkpoint, *options], cwd=REPO_ROOT, capture_output=True,
        text=True)


def _checkpoint(config: str, path) -> str:
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(config).model).state_dict()), str(path))
    return str(path)


def test_tool_writes_pictures_and_html(tmp_path):
    config = osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_synthperson.py')
    checkpoint = _checkpoint(config, tmp_path / 'gadms.pth')
    out_dir = str(tmp_path / 'vis')
    # --cfg-options reach the model: a scorer over one layer instead of 2
    result = _tool(config, checkpoint, '--num', '2', '--out-dir', out_dir,
                   '--cfg-options', 'model.scorer.num_layers=1')
    assert result.returncode == 0, result.stderr[-2000:]
    page = open(osp.join(out_dir, 'index.html')).read()
    # SynthPerson: 2 captions per image, one thumbnail per image
    assert page.count('<img src="image_') == 4
    assert sorted(p for p in os.listdir(out_dir) if p.startswith(
        'image_')) == ['image_000.png', 'image_001.png']
    spans = re.findall(r'<span class="([^"]*)" title="([0-9.]+)"', page)
    assert len(spans) > 20
    assert all(0 <= float(score) <= 1 for _, score in spans)
    assert any('info' in c for c, _ in spans)
    pictures = [cv2.imread(osp.join(out_dir, f'caption_{i:03d}.png'))
                for i in range(4)]
    assert all(p is not None and p.shape[1] == 900 for p in pictures)
    overview = cv2.imread(osp.join(out_dir, 'overview.png'))
    assert np.array_equal(overview, np.concatenate(pictures))
    one_layer = _tool(config, checkpoint, '--num', '2', '--out-dir',
                      str(tmp_path / 'default'))
    assert one_layer.returncode == 0
    assert open(tmp_path / 'default' / 'index.html').read() != page


def test_a_model_without_scorer_needs_the_default_flag(tmp_path):
    config = osp.join(REPO_ROOT,
                      'configs/baselines/clip-sdm_tiny_synthperson.py')
    checkpoint = _checkpoint(config, tmp_path / 'clip_sdm.pth')
    refused = _tool(config, checkpoint, '--num', '1', '--out-dir',
                    str(tmp_path / 'refused'))
    assert refused.returncode != 0
    assert 'CLIPSDM has no token scorer; pass --default-scorer' in \
        refused.stderr
    assert not osp.exists(tmp_path / 'refused')
    allowed = _tool(config, checkpoint, '--num', '1', '--out-dir',
                    str(tmp_path / 'vis'), '--default-scorer')
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert osp.exists(tmp_path / 'vis' / 'overview.png')
