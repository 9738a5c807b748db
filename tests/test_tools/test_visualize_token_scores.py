import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import torch
from mmengine.config import Config

from gadms.datasets.transforms import get_tokenizer
from gadms.registry import MODELS
from gadms.visualization.token_scores import draw_token_scores, word_rows

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_pieces_merge_into_words_with_their_scores():
    tokenizer = get_tokenizer()
    ids = tokenizer(['jekyll wears red'])[0]
    # SOT, jek, yll, wears, red, EOT
    assert ids[:6].tolist()[0] == 49406 and ids[5] == 49407
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


def test_tool_writes_pictures_and_html(tmp_path):
    torch.manual_seed(0)
    config = osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_synthperson.py')
    checkpoint = str(tmp_path / 'gadms.pth')
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(config).model).state_dict()), checkpoint)
    out_dir = str(tmp_path / 'vis')
    subprocess.run(
        [sys.executable, 'tools/analysis_tools/visualize_token_scores.py',
         config, checkpoint, '--num', '1', '--out-dir', out_dir],
        cwd=REPO_ROOT, check=True, capture_output=True)
    page = open(osp.join(out_dir, 'index.html')).read()
    # SynthPerson: 2 captions per image
    assert page.count('<img src="image_') == 2
    spans = re.findall(r'<span class="([^"]*)" title="([0-9.]+)"', page)
    assert len(spans) > 20
    assert all(0 <= float(score) <= 1 for _, score in spans)
    assert any('info' in c for c, _ in spans)
    picture = cv2.imread(osp.join(out_dir, 'caption_000.png'))
    assert picture is not None and picture.shape[1] == 900
