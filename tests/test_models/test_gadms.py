import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from common import EOT, MASK, REPO_ROOT, SOT
from mmengine.config import Config
from tiny_models import tiny_backbone_cfg

from gadms.models.score_bank import TokenScoreBank
from gadms.registry import MODELS
from gadms.structures import TextPersonDataSample


def _batch(num=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(num):
        inputs.append(torch.randint(0, 256, (3, 32, 16), dtype=torch.uint8,
                                    generator=generator))
        ids = torch.zeros(1, 77, dtype=torch.long)
        ids[0, 0] = SOT
        ids[0, 1:6 + i] = torch.randint(1, MASK, (5 + i, ),
                                        generator=generator)
        ids[0, 6 + i] = EOT
        sample = TextPersonDataSample().set_pid(i // 2).set_text_ids(ids)
        sample.set_metainfo(dict(sample_idx=10 + i))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type='GADMS',
        backbone=tiny_backbone_cfg(),
        scorer=dict(type='GradAttnScorer', num_layers=2),
        mtp_head=dict(type='MTPHead', depth=1, heads=2,
                      loss=dict(type='MaskedTokenLoss', loss_weight=0.4)))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_reduces_exactly_to_the_baseline():
    gadms = _model(scorer=None, neck=dict(type='DualMaskNeck', policy='off'),
                   mtp_head=None)
    torch.manual_seed(0)
    baseline = MODELS.build(dict(type='CLIPSDM',
                                 backbone=tiny_backbone_cfg()))
    baseline.load_state_dict(gadms.state_dict())
    batch = _batch()
    expected = baseline(**baseline.data_preprocessor(batch, True),
                        mode='loss')
    losses = gadms(**gadms.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'loss_sdm'}
    assert losses['loss_sdm'].item() == pytest.approx(
        expected['loss_sdm'].item(), rel=1e-6)


def test_full_step_scores_captions_into_the_bank():
    model = _model()
    model.score_bank = TokenScoreBank(20, init_value=0.85)
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_sdm', 'loss_mtp'}
    sum(losses.values()).backward()
    assert model.mtp_head.mlm_head[3].weight.grad is not None
    assert model.backbone.clip.token_embedding.weight.grad is not None
    scores = model.score_bank.read(torch.arange(10, 14))
    untouched = model.score_bank.read(torch.tensor([0, 19]))
    torch.testing.assert_close(untouched, torch.full((2, 77), 0.85),
                               atol=1e-3, rtol=0)
    ids = data['inputs']['text_ids']
    special = (torch.arange(77)[None] == 0) | (
        torch.arange(77)[None] >= ids.argmax(1)[:, None])
    assert (scores[special] == 0).all()
    assert scores.max().item() == pytest.approx(1.0, abs=1e-3)


def test_masks_read_the_bank_at_the_sample_indices():
    model = _model(scorer=None)
    model.score_bank = TokenScoreBank(20, init_value=0.0)
    batch = _batch()
    data = model.data_preprocessor(batch, True)
    low = model._previous_scores(batch['data_samples'],
                                 data['inputs']['text_ids'])
    assert (low == 0).all()
    model.score_bank.update(torch.arange(10, 14), torch.ones(4, 77))
    high = model._previous_scores(batch['data_samples'],
                                  data['inputs']['text_ids'])
    assert (high == 1).all()


def test_predict_matches_baseline_features():
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        samples = model(**model.data_preprocessor(batch), mode='predict')
        image_feats, _ = model(**model.data_preprocessor(batch),
                               mode='tensor')
    torch.testing.assert_close(samples[0].image_feat,
                               F.normalize(image_feats[0], dim=-1))


def test_mtp_head_loss_only_on_labelled_positions():
    torch.manual_seed(0)
    head = MODELS.build(dict(type='MTPHead', embed_dim=32, depth=1, heads=2,
                             loss=dict(type='MaskedTokenLoss',
                                       loss_weight=0.5)))
    text, image = torch.randn(2, 77, 32), torch.randn(2, 9, 32)
    labels = torch.zeros(2, 77, dtype=torch.long)
    labels[0, 3], labels[1, 5] = 42, 7
    loss = head.loss(text, image, labels)['loss_mtp']
    logits = head.mlm_head(head(text, image))
    expected = 0.5 * F.cross_entropy(
        torch.stack([logits[0, 3], logits[1, 5]]), torch.tensor([42, 7]))
    torch.testing.assert_close(loss, expected)
    empty = head.loss(text, image, torch.zeros_like(labels))['loss_mtp']
    assert empty.item() == 0.0 and empty.requires_grad
    # per group of 1 caption: the mean of the two rows' means
    group = MODELS.build(dict(type='MTPHead', embed_dim=32, depth=1, heads=2,
                              loss=dict(type='MaskedTokenLoss',
                                        loss_weight=0.5, norm_scope='group',
                                        group_size=1)))
    group.load_state_dict(head.state_dict())
    labels[1, 9] = 11
    logits_1 = logits[1, [5, 9]]
    per_row = torch.stack([
        F.cross_entropy(logits[0, 3:4], torch.tensor([42])),
        F.cross_entropy(logits_1, torch.tensor([7, 11]))])
    torch.testing.assert_close(
        group.loss(text, image, labels)['loss_mtp'], 0.5 * per_row.mean())
    # IRRA initialisation scales
    std = head.cross_attn.in_proj_weight.std().item()
    assert std == pytest.approx(32**-0.5, rel=0.1)


def test_fine_tuning_logs_its_random_mlm_as_loss_mlm():
    head = MODELS.build(dict(type='MTPHead', embed_dim=32, depth=1, heads=2,
                             loss_name='loss_mlm'))
    labels = torch.zeros(1, 77, dtype=torch.long)
    labels[0, 2] = 5
    losses = head.loss(torch.randn(1, 77, 32), torch.randn(1, 9, 32), labels)
    assert set(losses) == {'loss_mlm'}
    with pytest.raises(ValueError, match="must start with 'loss'"):
        MODELS.build(dict(type='MTPHead', embed_dim=32, depth=1, heads=2,
                          loss_name='mlm'))
    finetune = Config.fromfile(osp.join(
        REPO_ROOT,
        'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py'))
    assert finetune.model.mtp_head.loss_name == 'loss_mlm'
