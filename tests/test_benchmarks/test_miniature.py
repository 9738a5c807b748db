"""The pretrained-start miniature (benchmarks/miniature_paper.py): its
simulated captioner, the noise-token labels of the selectivity diagnostic,
and a fast end-to-end run of every stage."""
import json
import os.path as osp
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import torch
from common import REPO_ROOT

sys.path.insert(0, REPO_ROOT)

from benchmarks.miniature.corpus import (  # noqa: E402
    BACKGROUND_CLAUSES, HALLUCINATIONS, SimulatedMLLMCaptioner, _sha1)
from benchmarks.score_diagnostics import (_auc, _position_debiased,  # noqa
                                          noise_token_labels)
from gadms.datasets.synth.attributes import sample_attributes  # noqa: E402
from gadms.datasets.synth.captions import COLOUR_WORDS  # noqa: E402
from gadms.datasets.transforms import get_tokenizer  # noqa: E402


def _captioner(errors=None):
    attrs = sample_attributes(np.random.default_rng(5)).to_dict()
    image = b'fake png bytes'
    return SimulatedMLLMCaptioner({_sha1(image): attrs}, errors or {}), \
        image, attrs


def test_simulated_captioner_is_deterministic_and_marks_its_noise():
    captioner, image, attrs = _captioner()
    assert captioner(image, 'style 3') == captioner(image, 'style 3')
    hallucinations = {h.format(he=he, his=his, him=him).lower()
                      for he, his, him in (('he', 'his', 'him'),
                                           ('she', 'her', 'her'))
                      for h in HALLUCINATIONS}
    true_colours = {v for k, v in attrs.items() if 'colour' in k and v}
    kinds = Counter()
    for k in range(400):
        caption = captioner(image, f'style {k}')
        spans = captioner.spans[(_sha1(image), caption)]
        if not caption.endswith('.'):  # truncated: spans cut with it
            assert all(end <= len(caption) for _, _, end in spans)
            continue
        for kind, start, end in spans:
            text = caption[start:end]
            kinds[kind] += 1
            if kind == 'background':
                assert text in BACKGROUND_CLAUSES
            elif kind == 'hallucination':
                assert text.lower() in hallucinations
            elif kind == 'wrong_colour':
                assert text in COLOUR_WORDS and re.fullmatch(r'\w+', text)
            else:  # a repeated sentence occurs earlier in the caption
                assert kind == 'repetition' and text in caption[:start]
        assert any(c in caption for c in true_colours)
    # rates of DEFAULT_ERRORS (0.5, 0.2, 0.15, 0.1; 4% truncated)
    for kind, rate in (('background', 0.5), ('hallucination', 0.2),
                       ('wrong_colour', 0.15), ('repetition', 0.1)):
        assert abs(kinds[kind] / 400 - rate) < 4 * (rate / 400)**0.5, kind


def test_noise_token_labels_point_at_the_noise_words():
    captioner, image, _ = _captioner(dict(background=1.0, wrong_colour=1.0,
                                          truncation=0.0))
    tokenizer = get_tokenizer(77)
    for k in range(20):
        caption = captioner(image, f'style {k}')
        spans = captioner.spans[(_sha1(image), caption)]
        labels = noise_token_labels(caption, spans, tokenizer)
        ids = tokenizer([caption])[0]
        noise_text = tokenizer.decode([ids[p] for p in sorted(
            labels['noise'])])
        expected = ' '.join(caption[s:e] for _, s, e in sorted(
            spans, key=lambda span: span[1])).lower()
        assert noise_text.replace(' ', '') == re.sub(r'\s', '', expected)
        colours = tokenizer.decode([ids[p] for p in sorted(
            labels['attribute'])]).split()
        assert colours and set(colours) <= set(COLOUR_WORDS)
        assert not labels['noise'] & labels['attribute']


def test_position_debiasing_by_hand():
    # distance 1: values 1 (attribute) and 2 (noise), mean 1.5; distance 2:
    # 3 and 6, mean 4.5; a third attribute token alone at distance 5
    values = dict(attribute=[torch.tensor([1., 3.]), torch.tensor([7.])],
                  noise=[torch.tensor([2., 6.])])
    distances = dict(attribute=[torch.tensor([1., 2.]), torch.tensor([5.])],
                     noise=[torch.tensor([1., 2.])])
    attribute, noise = _position_debiased(values, distances)
    assert attribute.tolist() == [-0.5, -1.5, 0.0]
    assert noise.tolist() == [0.5, 1.5]


def test_auc_equals_the_pairwise_count_with_ties():
    generator = np.random.default_rng(0)
    high = generator.integers(0, 6, 40).astype(float)
    low = generator.integers(0, 4, 30).astype(float)
    pairs = (high[:, None] > low[None]) + 0.5 * (high[:, None] == low[None])
    assert abs(_auc(torch.tensor(high), torch.tensor(low)) -
               pairs.mean()) < 1e-12


def _miniature(work_root: str) -> str:
    done = subprocess.run(
        [sys.executable, 'benchmarks/miniature_paper.py', '--fast',
         '--work-root', work_root, '--seeds', '0', '1', '--ablation-seeds',
         '--arms', 'GA-DMS', 'constant scores'],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_fast_miniature_runs_every_stage_and_resumes(tmp_path):
    root = str(tmp_path / 'miniature')
    _miniature(root)
    with open(osp.join(root, 'results.json')) as f:
        rows = json.load(f)
    runs = sorted((r['arm'], r['seed']) for r in rows)
    # two arms: GA-DMS and a control derived from its seed 0 score bank
    assert runs == [('GA-DMS', 0), ('GA-DMS', 1), ('constant scores', 0),
                    ('constant scores', 1)]
    for row in rows:  # one tools/test.py run scored the three layouts
        for name in ('CUHK-PEDES', 'ICFG-PEDES', 'RSTPReid'):
            assert 0 <= row['metrics'][f'{name}/t2i/R1'] <= 100
    # stage 0 weights went through the backbone's `pretrained` path
    with open(osp.join(root, 'runs', 'GA-DMS', 'seed0', 'log')) as f:
        assert 'Loaded CLIP weights from' in f.read()
    corpus = json.load(open(osp.join(root, 'corpus', 'corpus.done')))
    assert corpus['filter']['rejected']  # the person rules did reject
    assert corpus['export']['kept'] > 0
    report = open(osp.join(root, 'report.md')).read()
    for section in ('### results', '### paired', '### selectivity',
                    '### separation', 'GA-DMS - constant scores',
                    'rank of the signed sum', 'distance to EOT'):
        assert section in report
    assert osp.getsize(osp.join(root, 'miniature_r1.png')) > 0
    # a second call trains nothing again
    stamp = osp.getmtime(osp.join(root, 'results.json'))
    _miniature(root)
    assert osp.getmtime(osp.join(root, 'results.json')) == stamp
