import json
import os.path as osp

import numpy as np
import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config

from gadms.corpus import (TransformersCaptioner, UltralyticsDetector,
                          build_template_bank, caption_problem,
                          load_template_bank, make_template)
from gadms.corpus.templates import select_diverse
from gadms.registry import MODELS


def test_attribute_words_become_placeholders():
    assert make_template('A young woman in a red T-shirt and blue jeans, '
                         'carrying a black backpack.') == (
        'A young [person] in a [colour] [upper] and [colour] [lower], '
        'carrying a [colour] [bag].')


def test_diverse_selection_covers_every_cluster():
    groups = {
        'shoes': [f'The [person] wears [colour] [shoes] number {i}.'
                  for i in range(8)],
        'bag': [f'A [bag] is carried by the [person] on side {i} today.'
                for i in range(8)],
        'hair': [f'[colour] [hair] falls over the shoulders in style {i}.'
                 for i in range(8)],
    }
    templates = [t for group in groups.values() for t in group]
    kept = select_diverse(templates * 2, num_clusters=3, per_cluster=2)
    assert len(kept) == 9 and len(set(kept)) == 9
    for group in groups.values():
        assert len(set(kept) & set(group)) == 3
    bank = build_template_bank(['A man in a red coat.', 'It rains.'], 5)
    assert bank == ['A [person] in a [colour] [upper].']


def test_template_bank_file(tmp_path):
    path = tmp_path / 'bank.json'
    path.write_text(json.dumps(['A [person].']))
    assert load_template_bank(str(path)) == ['A [person].']
    path.write_text(json.dumps(['ok', '']))
    with pytest.raises(ValueError, match='bank.json: expected a non-empty'):
        load_template_bank(str(path))


@pytest.mark.parametrize('caption, problem', [
    ('', 'empty'), ('   ', 'empty'),
    ('I cannot help with identifying people.', 'refusal'),
    ('As an AI, I do not describe people in detail, sorry.', 'refusal'),
    ('A man in a red coat', 'truncated'),
    ('A man in a red coat with a bag and', 'truncated'),
    ('A man in a red coat carries a black bag on his back.', None),
])
def test_caption_problems(caption, problem):
    assert caption_problem(caption) == problem


def test_optional_backends_explain_what_is_missing(tmp_path):
    with pytest.raises(ImportError, match='needs ultralytics'):
        UltralyticsDetector(str(tmp_path / 'yolo11x-pose.pt'))(
            'a.png', None)
    with pytest.raises(FileNotFoundError, match='model folder'):
        TransformersCaptioner(str(tmp_path / 'qwen'))


def test_a_custom_embedder_decides_the_clusters():
    templates = [f'{word} template number {i}.' for word in ('a', 'b', 'c')
                 for i in range(4)]

    def by_first_word(texts):
        return np.eye(3, dtype=np.float32)[
            ['abc'.index(t[0]) for t in texts]]

    kept = select_diverse(templates, num_clusters=3, per_cluster=0,
                          embedder=by_first_word)
    assert sorted(t[0] for t in kept) == ['a', 'b', 'c']


def test_templates_cli_with_a_model_text_encoder(tmp_path):
    config = osp.join(REPO_ROOT, 'configs/baselines/'
                      'clip-sdm_tiny_1xb64_synthperson.py')
    checkpoint = str(tmp_path / 'model.pth')
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(config).model).state_dict()), checkpoint)
    captions = [f'A man in a {c} coat and {d} shoes walks by, number {i}.'
                for i, (c, d) in enumerate(
                    [('red', 'black'), ('blue', 'white')] * 6)]
    source, out = tmp_path / 'captions.json', tmp_path / 'bank.json'
    source.write_text(json.dumps(captions))
    run_tool('tools/dataset_converters/build_webperson_corpus.py',
             'templates', str(source), str(out), '--clusters', '3',
             '--per-cluster', '1', '--embed-with', config, checkpoint,
             check=True)
    bank = load_template_bank(str(out))
    assert 3 <= len(bank) <= 6
    assert all('[person]' in t and '[colour]' in t for t in bank)
