import math

import pytest
import torch
from common import EOT, MASK, SOT

from gadms.registry import MODELS

SCORE_VALUES = (0.0, 0.05, 0.1, 0.15, 0.3, 0.85, 1.0)


def _captions(rows: int, length: int = 40) -> torch.Tensor:
    ids = torch.zeros(rows, 77, dtype=torch.long)
    ids[:, 0] = SOT
    ids[:, 1:length] = torch.randint(1, MASK, (rows, length - 1))
    ids[:, length] = EOT
    return ids


def p_noise(s):  # 0.2 * sigmoid(20 * ((1 - s) - 0.9)), by hand
    return 0.2 / (1 + math.exp(-20 * ((1 - s) - 0.9)))


def p_info(s):  # 0.3 * sigmoid(20 * (s - 0.1))
    return 0.3 / (1 + math.exp(-20 * (s - 0.1)))


def test_probabilities_match_the_formulas_and_table():
    neck = MODELS.build(dict(type='DualMaskNeck'))
    scores = torch.tensor(SCORE_VALUES)
    noise, info = neck.selection_probs(scores)
    torch.testing.assert_close(noise, torch.tensor(
        [p_noise(s) for s in SCORE_VALUES]))
    torch.testing.assert_close(info, torch.tensor(
        [p_info(s) for s in SCORE_VALUES]))
    # method.md 4.1: both cross at s = 0.1 with 0.10 and 0.15
    assert noise[2].item() == pytest.approx(0.10)
    assert info[2].item() == pytest.approx(0.15)


# method.md's table of the two presets: (score, p_n, P([MASK]) in the
# noise view) by hand from 0.2 * sigmoid(20 * ((1 - s) - 0.9)) with BERT's
# 80% [MASK], and 1.0 * sigmoid(60 * ((1 - s) - 0.9)), every one [MASK]
PRESET_TABLE = {
    'paper': [(0.0, 0.1762, 0.1409), (0.05, 0.1462, 0.1170),
              (0.1, 0.1, 0.08), (0.2, 0.0238, 0.0191), (0.5, 0.0001, 0.0001),
              (1.0, 0.0, 0.0)],
    'hard': [(0.0, 0.9975, 0.9975), (0.05, 0.9526, 0.9526), (0.1, 0.5, 0.5),
             (0.2, 0.0025, 0.0025), (0.5, 0.0, 0.0), (1.0, 0.0, 0.0)],
}


@pytest.mark.parametrize('preset', ['paper', 'hard'])
def test_noise_presets_match_the_table(preset):
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='DualMaskNeck', noise_preset=preset,
                             force_one_noise=False))
    table = torch.tensor(PRESET_TABLE[preset])
    noise, _ = neck.selection_probs(table[:, 0])
    torch.testing.assert_close(noise, table[:, 1], atol=6e-5, rtol=0)
    # the replacement: [MASK] in 80% (paper) or all (hard) of selections
    rows = 4000
    ids = _captions(rows)
    views = neck(ids, torch.zeros(rows, 77))
    selected = views.noise_labels[:, 1:40] != 0
    masked = (views.noise_ids[:, 1:40] == MASK) & selected
    share = masked.sum().item() / selected.sum().item()
    assert share == (1.0 if preset == 'hard' else pytest.approx(0.8,
                                                                abs=0.01))


def test_a_preset_and_its_settings_are_not_mixed():
    with pytest.raises(ValueError, match=r"noise_preset='hard' sets "
                       r"\['noise_lam'\]: give either"):
        MODELS.build(dict(type='DualMaskNeck', noise_preset='hard',
                          noise_lam=30))
    with pytest.raises(ValueError, match="noise_preset must be one of"):
        MODELS.build(dict(type='DualMaskNeck', noise_preset='soft'))


def test_the_old_name_noise_mask_still_sets_the_preset():
    with pytest.warns(DeprecationWarning, match='use noise_preset'):
        old = MODELS.build(dict(type='DualMaskNeck', noise_mask='hard'))
    new = MODELS.build(dict(type='DualMaskNeck', noise_preset='hard'))
    # NOISE_PRESETS['hard'], written out
    for neck in (old, new):
        assert (neck.noise_alpha, neck.noise_lam, neck.noise_gamma,
                neck.noise_replace) == (1.0, 60.0, 0.9, 'mask_only')
    with pytest.raises(ValueError, match='give noise_preset only'):
        MODELS.build(dict(type='DualMaskNeck', noise_preset='hard',
                          noise_mask='hard'))


@pytest.mark.parametrize('preset', [None, 'paper', 'hard'])
def test_the_noise_slope_leaves_the_mtp_view_alone(preset):
    """noise_lam is the noise view's slope: the 'hard' preset (noise_lam
    60) keeps the MTP view at the paper's p_i = 0.3 sigmoid(20 (s - 0.1)):
    0.0358 at s = 0, where a shared slope of 60 gave 0.0007."""
    neck = MODELS.build(dict(type='DualMaskNeck', noise_preset=preset))
    scores = torch.tensor(SCORE_VALUES)
    _, info = neck.selection_probs(scores)
    torch.testing.assert_close(info, torch.tensor(
        [p_info(s) for s in SCORE_VALUES]))
    assert info[0].item() == pytest.approx(0.03576, abs=1e-5)
    assert neck.lam == 20.0


def test_noise_lam_sets_the_noise_slope_only():
    neck = MODELS.build(dict(type='DualMaskNeck', noise_lam=40.0))
    noise, info = neck.selection_probs(torch.tensor([0.0, 0.1, 0.2]))
    # 0.2 sigmoid(40 ((1 - s) - 0.9)) by hand: 0.2 / (1 + e^-4), 0.1,
    # 0.2 / (1 + e^4)
    torch.testing.assert_close(noise, torch.tensor(
        [0.196403, 0.1, 0.003597]), atol=2e-6, rtol=0)
    torch.testing.assert_close(info, torch.tensor(
        [p_info(0.0), p_info(0.1), p_info(0.2)]))


def test_empirical_selection_rates_within_three_standard_errors():
    torch.manual_seed(0)
    neck = MODELS.build(dict(type='DualMaskNeck', force_one_mtp=False))
    rows_per_value = 400
    ids = _captions(rows_per_value * len(SCORE_VALUES))
    scores = torch.tensor(SCORE_VALUES).repeat_interleave(
        rows_per_value)[:, None].expand(-1, 77)
    views = neck(ids, scores)
    content = slice(1, 40)
    for view, rule in ((views.noise_labels, p_noise),
                       (views.mtp_labels, p_info)):
        for k, s in enumerate(SCORE_VALUES):
            block = view[k * rows_per_value:(k + 1) * rows_per_value,
                         content]
            trials = block.numel()
            rate = (block != 0).float().mean().item()
            p = rule(s)
            stderr = math.sqrt(max(p * (1 - p), 1e-12) / trials)
            assert abs(rate - p) <= 3 * stderr + 1e-9, (rule.__name__, s,
                                                        rate, p)


def test_bert_replacement_and_label_consistency():
    torch.manual_seed(1)
    neck = MODELS.build(
        dict(type='DualMaskNeck', info_alpha=1.0, info_gamma=-10.0))
    ids = _captions(300)
    views = neck(ids, torch.ones(ids.shape))
    selected = views.mtp_labels != 0
    changed = views.mtp_ids != ids
    # labels carry the original id exactly where a token was selected
    assert torch.equal(views.mtp_labels[selected], ids[selected])
    assert not (changed & ~selected).any()
    masked = (views.mtp_ids == MASK) & selected
    kept = (views.mtp_ids == ids) & selected
    randomised = selected & ~masked & ~kept
    total = selected.sum().item()
    for count, share in ((masked, 0.8), (kept, 0.1), (randomised, 0.1)):
        p = count.sum().item() / total
        assert abs(p - share) < 3 * math.sqrt(share * (1 - share) / total)
    assert ((views.mtp_ids[randomised] >= 1) &
            (views.mtp_ids[randomised] < MASK)).all()


def test_special_tokens_are_never_selected():
    torch.manual_seed(2)
    neck = MODELS.build(
        dict(type='DualMaskNeck', noise_alpha=1.0, noise_gamma=-10.0,
             info_alpha=1.0, info_gamma=-10.0))
    ids = _captions(50)
    ids[:, 5] = MASK  # an existing [MASK] is not eligible either
    views = neck(ids, torch.full(ids.shape, 0.5))
    special = (ids == 0) | (ids >= MASK)
    for labels, out in ((views.noise_labels, views.noise_ids),
                        (views.mtp_labels, views.mtp_ids)):
        assert (labels[special] == 0).all()
        assert torch.equal(out[special], ids[special])
        assert (labels[:, 1:40][~special[:, 1:40]] != 0).all()


def test_forced_token_only_for_the_mtp_view_by_default():
    neck = MODELS.build(
        dict(type='DualMaskNeck', noise_alpha=0.0, info_alpha=0.0))
    ids = _captions(20)
    views = neck(ids, torch.rand(ids.shape))
    assert torch.equal(views.noise_ids, ids)
    assert (views.noise_labels == 0).all()
    assert (views.mtp_ids[:, 1] == MASK).all()
    assert torch.equal(views.mtp_labels[:, 1], ids[:, 1])
    assert (views.mtp_labels[:, 2:] == 0).all()
    both = MODELS.build(
        dict(type='DualMaskNeck', noise_alpha=0.0, info_alpha=0.0,
             force_one_noise=True))
    assert (both(ids, torch.rand(ids.shape)).noise_ids[:, 1] == MASK).all()


def test_random_and_off_policies():
    torch.manual_seed(3)
    ids = _captions(500)
    random_views = MODELS.build(
        dict(type='DualMaskNeck', policy='random', force_one_mtp=False))(ids)
    assert torch.equal(random_views.noise_ids, ids)
    rate = (random_views.mtp_labels[:, 1:40] != 0).float().mean().item()
    assert abs(rate - 0.15) < 3 * math.sqrt(0.15 * 0.85 / (500 * 39))
    off = MODELS.build(dict(type='DualMaskNeck', policy='off'))(ids)
    assert torch.equal(off.noise_ids, ids) and off.mtp_ids is None
    with pytest.raises(ValueError, match='policy'):
        MODELS.build(dict(type='DualMaskNeck', policy='sometimes'))
    with pytest.raises(ValueError, match='token scores'):
        MODELS.build(dict(type='DualMaskNeck'))(ids)


def test_uniform_policy_masks_both_views_at_fixed_rates():
    torch.manual_seed(4)
    ids = _captions(500)
    views = MODELS.build(dict(type='DualMaskNeck', policy='uniform',
                              uniform_rates=(0.05, 0.25),
                              force_one_mtp=False))(ids)
    trials = 500 * 39
    for labels, p in ((views.noise_labels, 0.05), (views.mtp_labels, 0.25)):
        rate = (labels[:, 1:40] != 0).float().mean().item()
        assert abs(rate - p) < 3 * math.sqrt(p * (1 - p) / trials)
    # the noise view is corrupted (80% of its selections become [MASK])
    assert (views.noise_ids == MASK).any()


def _lowest_by_hand(ids, scores, draws, budget):
    """Per row, the positions of the ``budget`` lowest-scored eligible
    tokens, ties to the lower draw."""
    chosen = []
    for row_ids, row_scores, row_draws in zip(ids.tolist(), scores.tolist(),
                                              draws.tolist()):
        eligible = [p for p, i in enumerate(row_ids) if 0 < i < MASK]
        chosen.append(set(sorted(
            eligible, key=lambda p: (row_scores[p], row_draws[p]))[:budget]))
    return chosen


@pytest.mark.parametrize('budget', [1, 2, 5])
def test_noise_budget_selects_only_the_lowest_scored_tokens(budget):
    torch.manual_seed(0)
    ids = _captions(6, length=8)
    ids[1, 1:4] = MASK  # [MASK] and padding are never eligible
    ids[2, 2:] = 0
    ids[2, 2] = EOT  # a row with a single content token
    # scores from a few levels, so that ties between positions occur
    scores = torch.randint(0, 4, (6, 77)).float() / 10
    neck = MODELS.build(dict(type='DualMaskNeck', noise_preset='hard',
                             noise_budget=budget))
    draws = torch.rand(6, 77)
    p_noise, p_info = neck.view_probs(ids, scores, draws)
    unbudgeted, same_info = MODELS.build(dict(
        type='DualMaskNeck', noise_preset='hard')).view_probs(ids, scores)
    eligible_counts = [7, 4, 1, 7, 7, 7]
    for row, positions in enumerate(_lowest_by_hand(ids, scores, draws,
                                                    budget)):
        assert len(positions) == min(budget, eligible_counts[row])
        kept = torch.zeros(77, dtype=torch.bool)
        kept[sorted(positions)] = True
        torch.testing.assert_close(p_noise[row][kept],
                                   unbudgeted[row][kept])
        assert (p_noise[row][~kept] == 0).all()
    torch.testing.assert_close(p_info, same_info)  # the MTP view: as is
    # the draws: never more than the budget per caption
    views = neck(ids.repeat(200, 1), scores.repeat(200, 1))
    assert ((views.noise_labels != 0).sum(dim=1) <= budget).all()


def test_budget_ties_go_to_the_lower_draw_and_are_counted():
    """Hand-made rows, budget 2: row 0 has three content tokens tied at 0
    (draws 0.9, 0.1, 0.5) and one at 0.5: the two tied ones with the lower
    draws are chosen, and the cut falls inside the tie. Row 1's scores
    are distinct (no tie at the cut); row 2 has a single content token
    (no cut). Tied fraction: 1 of 3 rows."""
    ids = torch.zeros(3, 77, dtype=torch.long)
    ids[:, 0] = SOT
    ids[:2, 1:5] = torch.tensor([10, 11, 12, 13])
    ids[:2, 5] = EOT
    ids[2, 1], ids[2, 2] = 10, EOT
    scores = torch.zeros(3, 77)
    scores[0, 1:5] = torch.tensor([0.0, 0.0, 0.0, 0.5])
    scores[1, 1:5] = torch.tensor([0.3, 0.1, 0.2, 0.0])
    draws = torch.full((3, 77), 0.99)
    draws[0, 1:5] = torch.tensor([0.9, 0.1, 0.5, 0.0])
    neck = MODELS.build(dict(type='DualMaskNeck', noise_preset='hard',
                             noise_budget=2))
    chosen = neck.lowest_scored(ids, scores, draws)
    assert chosen[0].nonzero().flatten().tolist() == [2, 3]
    assert chosen[1].nonzero().flatten().tolist() == [2, 4]
    assert chosen[2].nonzero().flatten().tolist() == [1]
    assert neck.budget_tied_fraction == pytest.approx(1 / 3)


def test_keyed_tie_breaks_spread_over_the_tied_words():
    """All content tokens tied, budget 1: over many steps each of the 7
    words is chosen about 1/7 of the time, where a tie to the earlier
    position always chose the first; the same keys and step repeat the
    choice."""
    ids = _captions(1, length=8)
    neck = MODELS.build(dict(type='DualMaskNeck', noise_preset='hard',
                             noise_budget=1, seed=3, force_one_noise=False))
    counts = torch.zeros(77)
    steps = 700
    for step in range(steps):
        views = neck(ids, torch.zeros(1, 77), sample_keys=torch.tensor([5]),
                     step=step)
        counts += (views.noise_labels[0] != 0).float()
    rates = counts[1:8] / steps  # p_n = 0.9975 at s = 0
    assert ((rates - 1 / 7).abs() < 3 * math.sqrt(1 / 7 * 6 / 7 / steps)
            + 0.005).all()
    again = neck(ids, torch.zeros(1, 77), sample_keys=torch.tensor([5]),
                 step=3)
    first = neck(ids, torch.zeros(1, 77), sample_keys=torch.tensor([5]),
                 step=3)
    assert torch.equal(again.noise_labels, first.noise_labels)
    assert neck.budget_tied_fraction == 1.0
    # the tie-break draws are not the selection's: at the paper's strength
    # the chosen word is selected with its p_n (0.176 at s = 0), not with
    # the chance that the lowest of 7 selection draws falls under it
    paper = MODELS.build(dict(type='DualMaskNeck', noise_budget=1, seed=3,
                              force_one_noise=False))
    selected = sum(bool((paper(ids, torch.zeros(1, 77),
                               sample_keys=torch.tensor([5]), step=step
                               ).noise_labels != 0).any())
                   for step in range(steps))
    p = p_noise(0.0)
    assert abs(selected / steps - p) < 3 * math.sqrt(p * (1 - p) / steps)


def test_noise_budget_must_be_positive():
    with pytest.raises(ValueError, match='noise_budget must be a positive'):
        MODELS.build(dict(type='DualMaskNeck', noise_budget=0))
