"""Pretrained folders: tools/model_converters/export_pretrained.py writes
model.safetensors, config.json and a model card; from_pretrained loads
them, runs no code from them, and refuses what does not match."""
import json
import os
import os.path as osp
import sys

import pytest
import torch
from common import REPO_ROOT, run_tool_main
from mmengine.config import Config
from safetensors.torch import load_file, save_file

from gadms.apis import TextPersonInferencer
from gadms.apis.pretrained import (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE,
                                   PretrainedFolderError, read_metrics)
from gadms.engine.checkpoint_loading import CheckpointError
from gadms.registry import MODELS

EXPORT = 'tools/model_converters/export_pretrained.py'
CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
TEST_SPLIT = dict(type='SynthPerson', split='test',
                  num_identities=dict(train=4, val=2, test=6),
                  images_per_identity=3)
METRICS = {'t2i/R1': 61.5, 't2i/R5': 88.25, 't2i/mAP': 57.0}


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> tuple:
    """(checkpoint, folder): a tiny CLIP-SDM and its export."""
    root = tmp_path_factory.mktemp('pretrained')
    torch.manual_seed(0)
    checkpoint = str(root / 'epoch_1.pth')
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(CONFIG).model).state_dict()), checkpoint)
    metrics = root / 'test_metrics.json'
    metrics.write_text(json.dumps(METRICS))
    folder = str(root / 'clip-sdm-tiny')
    run_tool_main(EXPORT, CONFIG, checkpoint, folder, '--metrics',
                  str(metrics))
    return checkpoint, folder


def _copy(folder: str, to) -> str:
    """A copy of a pretrained folder to tamper with."""
    os.makedirs(to)
    for name in os.listdir(folder):
        with open(osp.join(folder, name), 'rb') as f:
            (to / name).write_bytes(f.read())
    return str(to)


def _rewrite_config(folder: str, change) -> None:
    path = osp.join(folder, CONFIG_FILE)
    with open(path) as f:
        content = json.load(f)
    change(content)
    with open(path, 'w') as f:
        json.dump(content, f)


def test_a_folder_scores_a_test_split_like_its_checkpoint(exported):
    checkpoint, folder = exported
    assert sorted(os.listdir(folder)) == sorted(
        [CARD_FILE, CONFIG_FILE, WEIGHTS_FILE])
    original = TextPersonInferencer(CONFIG, checkpoint)
    packaged = TextPersonInferencer.from_pretrained(folder)
    # the same model: an index built with the checkpoint loads with it
    assert packaged.fingerprint == original.fingerprint
    indexes = [model.build_index(TEST_SPLIT, dtype=torch.float32,
                                 progress=False)
               for model in (original, packaged)]
    assert torch.equal(indexes[0].features, indexes[1].features)
    captions = ['a person in a red shirt and blue trousers',
                'someone with a green bag']
    for got, expected in zip(packaged.search(captions, indexes[1], topk=18),
                             original.search(captions, indexes[0], topk=18)):
        assert got == expected


def test_the_card_says_what_the_model_is(exported):
    _, folder = exported
    with open(osp.join(folder, CARD_FILE), encoding='utf-8') as f:
        card = f.read()
    assert card.startswith('---\nlibrary_name: gadms\n')
    assert '# clip-sdm-tiny' in card
    for row in ('| t2i/R1 | 61.50 |', '| t2i/R5 | 88.25 |',
                '| t2i/mAP | 57.00 |'):
        assert row in card
    assert 'SynthPerson' in card  # training and test data
    assert "from_pretrained('clip-sdm-tiny')" in card
    assert '## Limits' in card
    with open(osp.join(folder, CONFIG_FILE)) as f:
        config = json.load(f)
    # the folder holds every weight: nothing to download at load
    assert config['model']['backbone']['pretrained'] is None
    assert config['fingerprint'] in card


def test_one_changed_weight_is_refused(exported, tmp_path):
    _, folder = exported
    folder = _copy(folder, tmp_path / 'changed')
    weights = load_file(osp.join(folder, WEIGHTS_FILE))
    key = sorted(weights)[0]
    weights[key].view(-1)[0] += 0.5
    save_file(weights, osp.join(folder, WEIGHTS_FILE))
    with pytest.raises(PretrainedFolderError, match='fingerprint'):
        TextPersonInferencer.from_pretrained(folder)


@pytest.mark.parametrize('change, named', [
    ('drop', 'missing keys: {key}'),
    ('reshape', r'shape mismatches: {key} \(checkpoint \(1,\)'),
])
def test_weights_that_do_not_fit_the_config_name_the_key(
        exported, tmp_path, change, named):
    _, folder = exported
    folder = _copy(folder, tmp_path / change)
    weights = load_file(osp.join(folder, WEIGHTS_FILE))
    key = 'backbone.clip.ln_final.weight'
    if change == 'drop':
        del weights[key]
    else:
        weights[key] = torch.zeros(1)
    save_file(weights, osp.join(folder, WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=named.format(
            key=key.replace('.', r'\.'))):
        TextPersonInferencer.from_pretrained(folder)


@pytest.mark.parametrize('where, value', [
    ('backbone', 'subprocess.Popen'),   # MMEngine would import it
    ('backbone', 'antigravity'),        # importing it opens a browser
    ('model', 123),
])
def test_a_type_gadms_does_not_register_is_refused_unimported(
        exported, tmp_path, where, value):
    _, folder = exported
    folder = _copy(folder, tmp_path / 'types')

    def change(content):
        node = content['model']
        node = node if where == 'model' else node[where]
        node['type'] = value
    _rewrite_config(folder, change)
    named = 'model.type' if where == 'model' else f'model.{where}.type'
    with pytest.raises(PretrainedFolderError, match=named):
        TextPersonInferencer.from_pretrained(folder)
    assert 'antigravity' not in sys.modules


@pytest.mark.parametrize('change, message', [
    (lambda c: c.update(format='other/9'), "format 'other/9'"),
    (lambda c: c.update(_base_='evil.py'), r"unknown keys \['_base_'\]"),
    (lambda c: c.pop('fingerprint'), r"missing keys \['fingerprint'\]"),
])
def test_a_config_of_another_layout_is_refused(exported, tmp_path, change,
                                               message):
    _, folder = exported
    folder = _copy(folder, tmp_path / 'layout')
    _rewrite_config(folder, change)
    with pytest.raises(PretrainedFolderError, match=message):
        TextPersonInferencer.from_pretrained(folder)


def test_a_folder_without_weights_is_named(exported, tmp_path):
    _, folder = exported
    folder = _copy(folder, tmp_path / 'no_weights')
    os.remove(osp.join(folder, WEIGHTS_FILE))
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        TextPersonInferencer.from_pretrained(folder)


def test_an_export_that_fails_its_check_leaves_nothing(exported, tmp_path,
                                                       monkeypatch):
    checkpoint, _ = exported

    def broken(folder):
        raise PretrainedFolderError('checked and refused')
    monkeypatch.setattr(TextPersonInferencer, 'from_pretrained', broken)
    out = tmp_path / 'out'
    with pytest.raises(PretrainedFolderError, match='checked and refused'):
        run_tool_main(EXPORT, CONFIG, checkpoint, str(out))
    assert not out.exists() and os.listdir(tmp_path) == []


def test_an_existing_folder_needs_overwrite(exported, tmp_path):
    checkpoint, _ = exported
    (tmp_path / 'keep.txt').write_text('mine')
    with pytest.raises(SystemExit, match='--overwrite'):
        run_tool_main(EXPORT, CONFIG, checkpoint, str(tmp_path))
    assert os.listdir(tmp_path) == ['keep.txt']


def test_metrics_from_the_test_tool_or_its_log(tmp_path):
    out = tmp_path / 'test_metrics.json'
    out.write_text(json.dumps({'t2i/R1': 28.0, 't2i/mAP': 27.2}))
    assert read_metrics(str(out)) == {'t2i/R1': 28.0, 't2i/mAP': 27.2}
    log = tmp_path / '20261206_073951.json'
    log.write_text('{"t2i/R1": 20.0, "time": 0.2}\n'
                   '{"t2i/R1": 28.0, "data_time": 0.1, "time": 0.19}\n')
    assert read_metrics(str(log)) == {'t2i/R1': 28.0}
    empty = tmp_path / 'scalars.json'
    empty.write_text('{"loss": 1.0}\n')
    with pytest.raises(PretrainedFolderError, match='no metrics'):
        read_metrics(str(empty))
