import math

import pytest
import torch
import torch.nn.functional as F
from common import EOT, MASK, SOT
from tiny_models import tiny_backbone_cfg

from gadms.models.scorers import multi_scale_pool, normalise_scores
from gadms.registry import MODELS


def _backbone():
    torch.manual_seed(0)
    cfg = tiny_backbone_cfg()
    cfg['arch'] = dict(cfg['arch'], text_cfg=dict(
        cfg['arch']['text_cfg'], layers=3))
    return MODELS.build(cfg).eval()


def _captions():
    lengths = (5, 9, 3, 12)
    ids = torch.zeros(len(lengths), 77, dtype=torch.long)
    generator = torch.Generator().manual_seed(1)
    for row, length in enumerate(lengths):
        ids[row, 0] = SOT
        ids[row, 1:length + 1] = torch.randint(1, MASK, (length, ),
                                               generator=generator)
        ids[row, length + 1] = EOT
    return ids


def _interp_linear(values, size):
    """1-D linear resize with align_corners=False, written out."""
    n = len(values)
    out = []
    for i in range(size):
        src = max((i + 0.5) * n / size - 0.5, 0.0)
        left = min(int(math.floor(src)), n - 1)
        right = min(left + 1, n - 1)
        frac = src - left
        out.append(values[left] * (1 - frac) + values[right] * frac)
    return out


def _msp_reference(x, scales):
    """MSP over a [N, C] tensor, one channel and one block at a time."""
    n, channels = x.shape
    result = torch.zeros_like(x)
    for c in scales:
        for ch in range(channels):
            column = x[:, ch].tolist()
            blocks = [sum(column[i:i + c]) / len(column[i:i + c])
                      for i in range(0, n, c)]
            result[:, ch] += torch.tensor(_interp_linear(blocks, n))
    return result / len(scales)


def test_msp_hand_example_at_77_tokens_scale_2():
    x = torch.arange(77, dtype=torch.float64)[:, None]
    pooled = multi_scale_pool(x, (1, 2))[:, 0]
    # scale 2: 38 pair means 0.5, 2.5, ..., 74.5 and the tail 76 (39 values)
    # position 0 samples the first block (clamped): (0 + 0.5) / 2
    assert pooled[0].item() == pytest.approx(0.25)
    # position 1 samples block 0.2597...: 0.5 + 0.25974 * 2 = 1.01948
    assert pooled[1].item() == pytest.approx((1 + 0.5 + 2 * (1.5 * 39 / 77 -
                                                             0.5)) / 2)
    # the last position reads the tail block 76 (clamped)
    assert pooled[76].item() == pytest.approx(76.0)
    blocks = [2 * i + 0.5 for i in range(38)] + [76.0]  # 39 positions
    torch.testing.assert_close(
        multi_scale_pool(x, (2, ))[:, 0],
        torch.tensor(_interp_linear(blocks, 77), dtype=torch.float64))
    torch.testing.assert_close(multi_scale_pool(x, (1, 2)),
                               _msp_reference(x, (1, 2)))


def test_msp_matches_loop_reference_on_random_features():
    x = torch.randn(3, 77, 5, dtype=torch.float64)
    for scales in ((1, ), (2, ), (1, 2), (1, 3, 4)):
        pooled = multi_scale_pool(x, scales)
        for b in range(3):
            torch.testing.assert_close(pooled[b], _msp_reference(x[b], scales))


def _reference_scores(backbone, ids, image_feat, num_layers, attn_norm,
                      scales=(1, 2)):
    """GASS from the formulas: one sample and one layer at a time."""
    clip = backbone.clip
    blocks = clip.transformer.resblocks
    raw = torch.zeros(ids.shape, dtype=torch.float64)
    for b in range(ids.shape[0]):
        eos = int(ids[b].argmax())
        with torch.no_grad():
            h = clip.token_embedding(ids[b:b + 1]) + clip.positional_embedding
            for block in blocks[:len(blocks) - num_layers]:
                h = block(h, attn_mask=clip.attn_mask)
        h = h[0].detach().requires_grad_(True)  # [N, W]
        n, width = h.shape
        causal = torch.full((n, n), float('-inf')).triu(1)
        saved = []
        for block in blocks[len(blocks) - num_layers:]:
            z = block.ln_1(h)
            qkv = z @ block.attn.in_proj_weight.t() + block.attn.in_proj_bias
            q, k, v = qkv[:, :width], qkv[:, width:2 * width], qkv[:, 2 *
                                                                   width:]
            a = torch.softmax(q @ k.t() / math.sqrt(width) + causal, dim=-1)
            o = a @ v
            h = h + block.attn.out_proj(o)
            h = h + block.mlp(block.ln_2(h))
            saved.append((q, k, v, a, o))
        t = F.normalize(clip.ln_final(h)[eos] @ clip.text_projection, dim=0)
        sim = (F.normalize(image_feat[b], dim=0) * t).sum()
        grads = torch.autograd.grad(sim, [s[4] for s in saved])
        total = torch.zeros(n, dtype=torch.float64)
        for (q, k, v, a, o), g in zip(saved, grads):
            q_msp = _msp_reference(q.detach().double(), scales)
            k_msp = _msp_reference(k.detach().double(), scales)
            cos = torch.stack([F.cosine_similarity(q_msp[eos], k_msp[j],
                                                   dim=0) for j in range(n)])
            w = (cos - cos.min()) / (cos.max() - cos.min() + 1e-8)
            r = w * (v.detach().double() @ g[eos].double())
            att = a[eos].detach().double()
            m = torch.tensor([1.0 if 0 < j < eos else 0.0 for j in range(n)],
                             dtype=torch.float64)
            if attn_norm == 'paper':
                layer = (m * r) * (m * att) / ((m * att).sum() + 1e-8)
            else:
                layer = (m * r) * (m * att) / (r.sum() + 1e-8)
            total += layer
        raw[b] = m * total.relu()
    return (raw - raw.min()) / (raw.max() - raw.min())


@pytest.mark.parametrize('attn_norm', ['paper', 'code'])
def test_grad_attn_scorer_matches_reference(attn_norm):
    backbone = _backbone()
    ids = _captions()
    image_tokens = torch.randn(4, 9, 32)
    scorer = MODELS.build(
        dict(type='GradAttnScorer', num_layers=2, attn_norm=attn_norm))
    scores = scorer(backbone, ids, image_tokens)
    expected = _reference_scores(backbone, ids, image_tokens[:, 0], 2,
                                 attn_norm)
    torch.testing.assert_close(scores.double(), expected, atol=1e-5,
                               rtol=1e-5)
    assert scores.max().item() == pytest.approx(1.0)
    assert not scores.requires_grad


def test_special_positions_score_zero_and_no_parameter_gradients():
    backbone = _backbone().train()
    ids = _captions()
    scorer = MODELS.build(dict(type='GradAttnScorer', num_layers=3))
    scores = scorer(backbone, ids, torch.randn(4, 9, 32))
    eos = ids.argmax(dim=1)
    positions = torch.arange(77)
    special = (positions[None] == 0) | (positions[None] >= eos[:, None])
    assert (scores[special] == 0).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert all(p.grad is None for p in backbone.parameters())


def test_sample_scope_normalises_each_caption():
    backbone = _backbone()
    ids = _captions()
    scorer = MODELS.build(
        dict(type='GradAttnScorer', num_layers=2, norm_scope='sample'))
    scores = scorer(backbone, ids, torch.randn(4, 9, 32))
    torch.testing.assert_close(scores.amax(dim=1), torch.ones(4))


def test_group_scope_hand_example():
    raw = torch.tensor([[0.0, 2.0], [0.0, 4.0], [1.0, 3.0], [0.0, 6.0],
                        [5.0, 5.0]])
    # groups of 2 rows: {0, 1}, {2, 3}, {4} (a constant group gives zeros)
    expected = torch.tensor([[0.0, 0.5], [0.0, 1.0], [1 / 6, 0.5],
                             [0.0, 1.0], [0.0, 0.0]])
    torch.testing.assert_close(normalise_scores(raw, 'group', 2), expected)
    torch.testing.assert_close(normalise_scores(raw, 'batch'), raw / 6)
    with pytest.raises(ValueError, match='group_size'):
        MODELS.build(dict(type='GradAttnScorer', norm_scope='group'))
    with pytest.raises(ValueError, match="'global'"):
        MODELS.build(dict(type='CosineScorer', norm_scope='global'))


def test_rank_normalisation_hand_example():
    # SOT, 4 content tokens (one tie), EOT, padding
    ids = torch.tensor([[SOT, 5, 6, 7, 8, EOT, 0]])
    raw = torch.tensor([[0.0, 0.30, 0.02, 0.30, 0.01, 0.0, 0.0]])
    # ranks among the content tokens: 2.5, 1, 2.5, 0 out of 3
    expected = torch.tensor([[0.0, 2.5 / 3, 1 / 3, 2.5 / 3, 0.0, 0.0, 0.0]])
    scorer = MODELS.build(dict(type='CosineScorer', norm='rank'))
    torch.testing.assert_close(scorer.normalise(raw, ids), expected)
    squared = MODELS.build(dict(type='CosineScorer', norm='rank', power=2))
    torch.testing.assert_close(squared.normalise(raw, ids), expected**2)
    minmax = MODELS.build(dict(type='CosineScorer', power=0.5))
    torch.testing.assert_close(minmax.normalise(raw, ids), (raw / 0.3)**0.5)
    with pytest.raises(ValueError, match='norm must be'):
        MODELS.build(dict(type='CosineScorer', norm='quantile'))


@pytest.mark.parametrize('scorer_type', ['AttentionScorer', 'CosineScorer',
                                         'RandomScorer'])
def test_ablation_scorers_share_the_interface(scorer_type):
    backbone = _backbone()
    ids = _captions()
    cfg = dict(type=scorer_type)
    if scorer_type == 'AttentionScorer':
        cfg['num_layers'] = 2
    scores = MODELS.build(cfg)(backbone, ids, torch.randn(4, 9, 32))
    assert scores.shape == ids.shape
    eos = ids.argmax(dim=1)
    positions = torch.arange(77)
    special = (positions[None] == 0) | (positions[None] >= eos[:, None])
    assert (scores[special] == 0).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (scores[~special] > 0).any()


def test_dense_pass_with_model_heads_reproduces_encode_text():
    backbone = _backbone()
    ids = _captions()
    dense = backbone.encode_text_dense(ids, num_layers=2, heads=2)
    torch.testing.assert_close(dense.tokens, backbone.encode_text(ids),
                               atol=1e-5, rtol=1e-5)
    assert len(dense.attn_outputs) == 2
    assert dense.attn[0].shape == (4, 77, 77)
    with pytest.raises(ValueError, match='num_layers'):
        backbone.encode_text_dense(ids, num_layers=4)
