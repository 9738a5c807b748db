import os
import os.path as osp
import re
import subprocess

import cv2
import numpy as np
import torch
from common import EOT, REPO_ROOT, SOT, run_tool
from mmengine.config import Config

from gadms.apis import TextPersonInferencer
from gadms.apis.token_view import score_pairs, token_scorer
from gadms.datasets.transforms import MASK_TOKEN_ID, get_tokenizer
from gadms.models.utils import keyed_uniform
from gadms.registry import MODELS
from gadms.visualization.token_scores import draw_token_scores, word_rows


def test_pieces_merge_into_words_with_their_scores():
    tokenizer = get_tokenizer()
    ids = tokenizer(['jekyll wears red'])[0]
    # SOT, jek, yll, wears, red, EOT
    assert ids[:6].tolist()[0] == SOT and ids[5] == EOT
    scores = np.array([0.0, 0.2, 0.7, 0.05, 0.9, 0.0] + [0.0] * 71)
    p_noise = np.array([0, 0.1, 0.2, 0.15, 0, 0] + [0.0] * 71)
    p_info = np.array([0, 0.3, 0.3, 0.05, 0.3, 0] + [0.0] * 71)
    noise_drawn = np.zeros(77, bool)
    noise_drawn[2] = True  # one piece of "jekyll" replaced
    mtp_drawn = np.zeros(77, bool)
    mtp_drawn[4] = True
    rows = word_rows(tokenizer.words(ids), scores, p_noise, p_info,
                     noise_drawn, mtp_drawn)
    assert [r['text'] for r in rows] == ['jekyll', 'wears', 'red']
    assert [r['score'] for r in rows] == [0.7, 0.05, 0.9]
    # a word is selected when any of its pieces is: 1 - (0.9 * 0.8)
    np.testing.assert_allclose([r['p_noise'] for r in rows],
                               [0.28, 0.15, 0.0])
    np.testing.assert_allclose([r['p_info'] for r in rows],
                               [0.51, 0.05, 0.3])
    assert [r['noise'] for r in rows] == [True, False, False]
    assert [r['informative'] for r in rows] == [False, False, True]
    picture = draw_token_scores(np.zeros((128, 48, 3), np.uint8), rows)
    # the most informative word sits on an almost pure red background
    fade = int(round(255 * (1 - 0.9)))
    assert (np.all(picture == (fade, fade, 255), axis=2)).sum() > 100


def test_the_drawn_masks_are_the_necks(monkeypatch):
    """With fixed rates (the 'uniform' policy) the tool's probabilities and
    its one draw follow from the keyed uniforms alone: position j of
    caption t is selected in the noise view iff u(seed, step, t, j, 0) <
    rate (purposes 3-5 for the MTP view, which forces its first word when
    nothing is selected)."""
    config = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_synthperson.py'))
    config.merge_from_dict({'model.neck.policy': 'uniform',
                            'model.neck.uniform_rates': (0.3, 0.4),
                            'model.neck.seed': 7})
    inferencer = TextPersonInferencer(config)
    captions = ['a man in a grey coat with a black bag', 'a woman in red',
                'someone']
    image = np.zeros((96, 32, 3), np.uint8)
    triples = [(image, caption, None) for caption in captions]
    scorer = token_scorer(inferencer.model, False)
    scored = score_pairs(inferencer, triples, scorer, step=5)
    ids = scored['text_ids']
    eligible = (ids > 0) & (ids < MASK_TOKEN_ID)
    keys = torch.arange(3)[:, None]
    positions = torch.arange(77)[None, :]
    noise = (keyed_uniform(7, 5, keys, positions, 0) < 0.3) & eligible
    mtp = (keyed_uniform(7, 5, keys, positions, 3) < 0.4) & eligible
    none = ~mtp.any(dim=1)
    mtp[none, 1] = eligible[none, 1]
    assert torch.equal(scored['noise'], noise)
    assert torch.equal(scored['mtp'], mtp)
    assert noise.any() and mtp.any()
    torch.testing.assert_close(scored['p_noise'], 0.3 * eligible.float())
    torch.testing.assert_close(scored['p_info'], 0.4 * eligible.float())


def _tool(config: str, checkpoint: str, *options: str
          ) -> subprocess.CompletedProcess:
    return run_tool('tools/analysis_tools/visualize_token_scores.py', config,
                    checkpoint, *options)


def _checkpoint(config: str, path) -> str:
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(config).model).state_dict()), str(path))
    return str(path)


def test_tool_writes_pictures_and_html(tmp_path):
    config = osp.join(REPO_ROOT,
                      'configs/gadms/gadms_tiny_1xb64_synthperson.py')
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
                      'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
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
