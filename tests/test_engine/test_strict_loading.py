"""Evaluation and inference load checkpoints exactly: a file that does not
fit the model (or is not a model checkpoint) is an error listing why."""
import copy
import os.path as osp

import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config

from gadms.apis import GalleryIndex, TextPersonInferencer
from gadms.cli import build_runner
from gadms.engine import CheckpointError, load_model_weights
from gadms.registry import MODELS

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
GADMS_CONFIG = osp.join(REPO_ROOT,
                        'configs/gadms/gadms_tiny_1xb64_synthperson.py')
SMALL = dict(train_dataloader=dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(num_identities=dict(train=4, val=2, test=2))))


def _model(config: str = CONFIG, seed: int = 0, **arch):
    torch.manual_seed(seed)
    cfg = Config.fromfile(config).model
    cfg.backbone.arch.update(arch)
    return MODELS.build(cfg)


def _save(model, path) -> str:
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)),
               str(path))
    return str(path)


def _gallery_index(path) -> str:
    GalleryIndex(features=torch.randn(3, 8), paths=['a.jpg', 'b.jpg',
                                                    'c.jpg'],
                 pids=None, fingerprint='0' * 32).save(str(path))
    return str(path)


def _runner(work_dir, **options):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(dict(SMALL, **options))
    cfg.work_dir = str(work_dir)
    return build_runner(cfg)


def test_gallery_index_is_not_a_checkpoint(tmp_path):
    index = _gallery_index(tmp_path / 'gallery.pth')
    with pytest.raises(CheckpointError,
                       match=f'{index} is a gallery index'):
        _runner(tmp_path / 'work').load_checkpoint(index)
    with pytest.raises(CheckpointError, match='is a gallery index'):
        TextPersonInferencer(CONFIG, index)
    test = run_tool('tools/test.py', CONFIG, index, '--work-dir',
                 str(tmp_path / 'test'))
    assert test.returncode != 0
    assert f'CheckpointError: {index} is a gallery index' in test.stderr
    retrieve = run_tool('tools/retrieve.py', CONFIG, index, '--gallery', index,
                     '--query', 'a man in a red shirt')
    assert retrieve.returncode != 0
    assert f'CheckpointError: {index} is a gallery index' in \
        retrieve.stderr


def test_other_dicts_are_not_checkpoints(tmp_path):
    path = str(tmp_path / 'stats.pth')
    torch.save(dict(mean=[0.5], note='not weights'), path)
    with pytest.raises(CheckpointError,
                       match=r'not a model checkpoint: no state dict of '
                       r"tensors \(top-level keys: mean, note\)"):
        load_model_weights(_model(), path)


def test_another_model_size_is_refused_with_its_keys(tmp_path):
    other = _save(_model(embed_dim=64), tmp_path / 'embed64.pth')
    runner = _runner(tmp_path / 'work')
    before = copy.deepcopy(runner.model.state_dict())
    with pytest.raises(CheckpointError) as raised:
        runner.load_checkpoint(other)
    message = str(raised.value)
    assert f'checkpoint {other} does not fit the model' in message
    assert 'shape mismatches: backbone.clip.text_projection (checkpoint ' \
        '(128, 64), model (128, 128))' in message
    assert '--partial-load' in message
    # nothing was loaded
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # a training config's load_partial does not reach evaluation
    config = tmp_path / 'partial_config.py'
    config.write_text(f'_base_ = [{CONFIG!r}]\nload_partial = True\n')
    result = run_tool('tools/test.py', str(config), other, '--work-dir',
                   str(tmp_path / 'test'))
    assert result.returncode != 0
    assert 'shape mismatches: backbone.clip.text_projection' in result.stderr


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    gadms = _save(_model(GADMS_CONFIG, seed=1), tmp_path / 'gadms.pth')
    with pytest.raises(CheckpointError, match=r'unexpected keys: '
                       r'mtp_head\.'):
        load_model_weights(_model(), gadms)  # CLIP-SDM has no MTP head
    clip_sdm = _save(_model(seed=1), tmp_path / 'clip_sdm.pth')
    with pytest.raises(CheckpointError, match=r'missing keys: mtp_head\.'):
        load_model_weights(_model(GADMS_CONFIG), clip_sdm)


def test_partial_load_is_explicit(tmp_path):
    source = _model(GADMS_CONFIG, seed=1)
    clip_sdm = _save(_model(seed=1), tmp_path / 'clip_sdm.pth')
    target = _model(GADMS_CONFIG, seed=2)
    head_before = copy.deepcopy(target.mtp_head.state_dict())
    load_model_weights(target, clip_sdm, partial=True)
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(target.backbone.state_dict()[key], value), key
    for key, value in target.mtp_head.state_dict().items():
        assert torch.equal(value, head_before[key]), key
    # key prefixes allow only those keys to be missing
    load_model_weights(_model(GADMS_CONFIG), clip_sdm, partial=['mtp_head.'])
    with pytest.raises(CheckpointError, match=r'missing keys: mtp_head\.'):
        load_model_weights(_model(GADMS_CONFIG), clip_sdm,
                           partial=['id_head.'])
    # the inferencer and the runner take the same switch
    TextPersonInferencer(GADMS_CONFIG, clip_sdm, partial_load=True)
    cfg = Config.fromfile(GADMS_CONFIG)
    cfg.merge_from_dict(dict(SMALL, load_partial=True))
    cfg.work_dir = str(tmp_path / 'work')
    build_runner(cfg).load_checkpoint(clip_sdm)


def test_finetune_configs_allow_only_the_new_id_head():
    for name in ('cuhk-pedes', 'icfg-pedes', 'rstpreid'):
        cfg = Config.fromfile(osp.join(
            REPO_ROOT,
            f'configs/gadms/gadms_vit-b16_1xb128_{name}_finetune.py'))
        assert cfg.load_partial == ['id_head.'], name


def test_resume_is_exact_even_with_load_partial(tmp_path):
    clip_sdm = _save(_model(seed=1), tmp_path / 'clip_sdm.pth')
    cfg = Config.fromfile(GADMS_CONFIG)
    cfg.merge_from_dict(dict(SMALL, load_partial=True, resume=True,
                             load_from=clip_sdm))
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    with pytest.raises(CheckpointError, match=r'missing keys: mtp_head\.'):
        runner.load_checkpoint(clip_sdm)
