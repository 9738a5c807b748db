"""The pretrained-start miniature (benchmarks/miniature_paper.py): its
simulated captioner, the noise-token labels of the selectivity diagnostic,
and a fast end-to-end run of every stage."""
import json
import math
import os.path as osp
import re
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config

sys.path.insert(0, REPO_ROOT)

from benchmarks.miniature import arms  # noqa: E402
from benchmarks.miniature.corpus import (BACKGROUND_CLAUSES,  # noqa: E402
                                         DEFAULT_ERRORS, HALLUCINATIONS,
                                         SimulatedMLLMCaptioner, _sha1)
from benchmarks.miniature_paper import (paired_difference,  # noqa: E402
                                        paired_table)
from benchmarks.score_diagnostics import (_auc, _position_debiased,  # noqa
                                          bank_statistics, noise_token_labels)
from gadms.cli import register_all_modules  # noqa: E402
from gadms.datasets import WebPerson, export_synth_person  # noqa: E402
from gadms.datasets.synth.attributes import sample_attributes  # noqa: E402
from gadms.datasets.synth.captions import COLOUR_WORDS  # noqa: E402
from gadms.datasets.transforms import (AnnotateTokens,  # noqa: E402
                                       get_tokenizer)
from gadms.registry import MODELS  # noqa: E402


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


def test_hallucination_regime_marks_exactly_the_wrong_colour_words():
    captioner, image, _ = _captioner(arms.HALLUCINATION_ERRORS)
    truthful, _, _ = _captioner({kind: 0.0 for kind in DEFAULT_ERRORS})
    tokenizer = get_tokenizer(77)
    swapped = 0
    for k in range(200):
        caption = captioner(image, f'style {k}')
        spans = captioner.spans[(_sha1(image), caption)]
        assert [kind for kind, *_ in spans] in ([], ['wrong_colour'])
        if not spans:
            continue
        swapped += 1
        _, start, end = spans[0]
        word = caption[start:end]
        assert word in COLOUR_WORDS and re.fullmatch(r'\w+', word)
        # the annotation zeroes exactly the wrong word's tokens
        values = AnnotateTokens()(dict(
            captions=[caption], caption_idx=0, img_path='x',
            caption_annotations=[dict(noise_spans=spans)]))[
                'token_annotation'][0]
        ids = tokenizer([caption])[0]
        content = np.arange(77) <= ids.argmax()
        zeros = np.flatnonzero((values == 0) & content)[1:-1]
        assert tokenizer.decode(ids[zeros]) == word
        # the same caption without the error differs in that word only
        clean = truthful(image, f'style {k}')
        assert caption[:start] == clean[:start]
        assert clean.endswith(caption[end:])
        original = clean[start:len(clean) - len(caption[end:])]
        assert original in COLOUR_WORDS and original != word
    assert abs(swapped / 200 - 0.5) < 4 * (0.25 / 200)**0.5


SCORERS = dict(oracle='AnnotatedTokenScorer',
               consensus='ConsensusTokenScorer',
               counterfactual='CounterfactualTokenScorer',
               combined='CombinedTokenScorer')


@pytest.mark.parametrize('name', [*arms.HALLUCINATION_ARMS,
                                  *arms.SWEEP_ARMS, *arms.GUIDANCE_ARMS])
def test_hallucination_arms_configure_what_they_say(name, tmp_path):
    spec = {**arms.HALLUCINATION_ARMS, **arms.SWEEP_ARMS,
            **arms.GUIDANCE_ARMS}[name]
    path = tmp_path / 'config.py'
    path.write_text(arms.arm_config(spec, str(tmp_path), None, 2, 8, None,
                                    seed=7))
    cfg = Config.fromfile(str(path))
    register_all_modules()
    neck = MODELS.build(cfg.model.neck)
    hard = 'hard' in name
    if name != 'CLIP-SDM':
        # 'hard' is the noise view's alone: the MTP view keeps lam = 20
        assert (neck.noise_alpha, neck.noise_lam, neck.lam,
                neck.noise_replace) == ((1.0, 60.0, 20.0, 'mask_only') if hard
                                        else (0.2, 20.0, 20.0, 'bert'))
    budget = re.search(r'at most (\d)', name)
    assert neck.noise_budget == (int(budget.group(1)) if budget else None)
    assert (cfg.model.mtp_head is None) == (name == 'CLIP-SDM'
                                            or 'no MTP' in name)
    scorer = (cfg.model.scorer or {}).get('type')
    kind = name.split(',')[0]
    assert scorer == SCORERS.get(kind, None if name == 'CLIP-SDM'
                                 else 'GradAttnScorer')
    pipeline = cfg.train_dataloader.dataset.pipeline
    annotate = [t for t in pipeline if t['type'] == 'AnnotateTokens']
    consensus = [t for t in pipeline if t['type'] == 'ConsensusTokens']
    assert len(annotate) == (kind == 'oracle')
    assert len(consensus) == (kind in ('consensus', 'combined'))
    assert cfg.train_dataloader.dataset.get('caption_groups') == (
        'identity' if consensus else None)
    flip = re.search(r'q=([0-9.]+)', name)
    if flip:  # the flips follow the run's seed
        assert annotate[0]['flip_rate'] == float(flip.group(1))
        assert annotate[0]['flip_seed'] == 7
    if scorer:  # every scorer builds from the written config
        MODELS.build(cfg.model.scorer)
    # nothing reads the held-back test sets while training or choosing a
    # checkpoint: no validation, the last epoch's weights are tested
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    assert cfg.default_hooks.checkpoint.save_best is None
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path)
    with pytest.raises(ValueError, match='oracle arm'):
        arms.arm_config(arms.ArmSpec({}, True, 0.1), '', None, 2, 8, None)


def test_an_arm_trains_on_a_given_training_set(tmp_path):
    train_set = dict(type='CUHKPEDES', data_root='somewhere', split='train')
    path = tmp_path / 'config.py'
    path.write_text(arms.arm_config(arms.GUIDANCE_ARMS['consensus, hard'],
                                    None, None, 2, 8, None,
                                    train_set=train_set))
    dataset = Config.fromfile(str(path)).train_dataloader.dataset
    assert (dataset.type, dataset.data_root, dataset.caption_groups) == (
        'CUHKPEDES', 'somewhere', 'identity')


def test_correlated_hallucinations_repeat_the_image_s_mistake():
    """repeat_rate r: each caption is still wrong with probability
    wrong_colour, and given a wrong caption, another caption of the same
    image states the same wrong word with probability about r (plus the
    chance coincidences of independent mistakes); r = 0 is the captioner
    of #27, draw for draw."""
    people = [sample_attributes(np.random.default_rng(k)).to_dict()
              for k in range(300)]
    images = [f'png {k}'.encode() for k in range(300)]
    attributes = {_sha1(i): a for i, a in zip(images, people)}

    def wrong_words(repeat_rate):
        captioner = SimulatedMLLMCaptioner(attributes, dict(
            arms.HALLUCINATION_ERRORS, repeat_rate=repeat_rate))
        words = []
        for image in images:
            pair = []
            for template in ('style 1', 'style 2'):
                caption = captioner(image, template)
                spans = captioner.spans[(_sha1(image), caption)]
                pair.append({caption[s:e] for _, s, e in spans})
            words.append(pair)
        return words

    for rate in (0.0, 0.5):
        pairs = wrong_words(rate)
        wrong = sum(bool(w) for pair in pairs for w in pair)
        assert abs(wrong / 600 - 0.5) < 4 * (0.25 / 600)**0.5
        # the wrong captions whose sibling states the same wrong word
        repeated = 2 * sum(bool(a) and a == b for a, b in pairs) / wrong
        assert abs(repeated - rate) < 0.1, (rate, repeated)
    plain = SimulatedMLLMCaptioner(attributes, arms.HALLUCINATION_ERRORS)
    zero = SimulatedMLLMCaptioner(attributes, dict(
        arms.HALLUCINATION_ERRORS, repeat_rate=0.0))
    assert [plain(i, 'style 4') for i in images[:50]] == [
        zero(i, 'style 4') for i in images[:50]]


def test_bank_statistics_by_hand(tmp_path):
    """A hand-made score bank on a small WebPerson corpus: the first colour
    word of each caption is the 'wrong' one (scored 0), the others are
    correct (1, except 0.05 on every third caption's second and third
    colour words)."""
    root = str(tmp_path / 'corpus')
    export_synth_person(root, 'webperson-parquet', num_identities=dict(
        train=6, val=1, test=1), images_per_identity=1)
    dataset = WebPerson(data_root=root, ann_file='data')
    tokenizer = get_tokenizer(77)
    bank = torch.ones(len(dataset), 77)
    spans, noise, correct, content = {}, [], [], 0
    correct_rows = []
    for row in range(len(dataset)):
        info = dataset.get_data_info(row)
        caption = info['captions'][0]
        ids = tokenizer([caption])[0]
        bank[row, 0] = bank[row, int(ids.argmax()):] = 0
        content += int(ids.argmax()) - 1
        pieces = tokenizer.word_pieces(caption)
        colours = [(k, start, end) for k, (start, end, _) in
                   enumerate(pieces) if caption[start:end] in COLOUR_WORDS]
        assert len(colours) >= 3
        spans.setdefault(info['img_path'], {})[caption] = [
            ['wrong_colour', colours[0][1], colours[0][2]]]
        for rank, (k, _, _) in enumerate(colours):
            position = 1 + k  # colour words are one BPE piece each
            if rank == 0:
                bank[row, position] = 0.0
                noise.append(0.0)
            else:
                value = 0.05 if rank in (1, 2) and row % 3 == 0 else 1.0
                bank[row, position] = value
                correct.append(value)
                correct_rows.append((row, value))
    with open(tmp_path / 'spans.json', 'w') as f:
        json.dump(spans, f)
    torch.save(dict(score_bank=bank), tmp_path / 'ckpt.pth')
    config = tmp_path / 'config.py'
    config.write_text(
        f"train_dataloader = dict(dataset=dict(type='WebPerson', "
        f"data_root={root!r}, ann_file='data'))\n"
        "model = dict(neck=dict(type='DualMaskNeck', noise_preset='hard', "
        "noise_budget=2))\n")
    stats = bank_statistics(str(config), str(tmp_path / 'ckpt.pth'),
                            str(tmp_path / 'spans.json'))
    # every pair (correct, wrong): 1 if the correct word scores higher;
    # all wrong words score 0, so only the 0.05s and the 1s count
    assert stats['auc'] == pytest.approx(
        sum(c > w for c in correct for w in noise) /
        (len(correct) * len(noise)))
    assert stats['noise_tokens'] == len(noise)
    assert stats['attribute_tokens'] == len(correct)
    hard = 1 / (1 + math.exp(-60 * ((1 - 0.0) - 0.9)))  # p_n at 0
    at_005 = 1 / (1 + math.exp(-60 * ((1 - 0.05) - 0.9)))
    assert stats['masked_noise'] == pytest.approx(hard, rel=1e-5)
    # the budget of 2 keeps the two lowest: the wrong word and one of the
    # two tied 0.05s (whichever the tie-break draws)
    lows = sum(1 for row in range(len(dataset)) if row % 3 == 0)
    assert stats['masked_attribute'] == pytest.approx(
        lows * at_005 / len(correct), rel=1e-5)
    assert stats['masked_content'] == pytest.approx(
        (len(noise) * hard + lows * at_005) / content, rel=1e-5)
    assert stats['unscored_captions'] == 0

    # a caption no epoch visited keeps the bank's initial 0.85: left out
    # (row 1 holds one wrong word and its correct colour words, all 1.0)
    bank[1] = 0.85
    torch.save(dict(score_bank=bank), tmp_path / 'ckpt.pth')
    stats = bank_statistics(str(config), str(tmp_path / 'ckpt.pth'),
                            str(tmp_path / 'spans.json'))
    kept = [value for row, value in correct_rows if row != 1]
    assert stats['unscored_captions'] == 1
    assert stats['noise_tokens'] == len(noise) - 1
    assert stats['attribute_tokens'] == len(kept)
    # the wrong words all score 0: only the 0.05s and 1s of kept rows count
    assert stats['auc'] == pytest.approx(sum(c > 0 for c in kept) /
                                         len(kept))


def test_bank_statistics_refuse_a_caption_without_recorded_spans(tmp_path):
    root = str(tmp_path / 'corpus')
    export_synth_person(root, 'webperson-parquet', num_identities=dict(
        train=2, val=1, test=1), images_per_identity=1)
    dataset = WebPerson(data_root=root, ann_file='data')
    spans = {}
    for row in range(len(dataset) - 1):  # the last caption is missing
        info = dataset.get_data_info(row)
        spans.setdefault(info['img_path'], {})[info['captions'][0]] = []
    with open(tmp_path / 'spans.json', 'w') as f:
        json.dump(spans, f)
    torch.save(dict(score_bank=torch.ones(len(dataset), 77)),
               tmp_path / 'ckpt.pth')
    config = tmp_path / 'config.py'
    config.write_text(
        f"train_dataloader = dict(dataset=dict(type='WebPerson', "
        f"data_root={root!r}, ann_file='data'))\n"
        "model = dict(neck=dict(type='DualMaskNeck'))\n")
    last = dataset.get_data_info(len(dataset) - 1)
    with pytest.raises(ValueError, match=re.escape(
            f"no noise spans recorded for {last['img_path']}, caption "
            f"{last['captions'][0]!r}")):
        bank_statistics(str(config), str(tmp_path / 'ckpt.pth'),
                        str(tmp_path / 'spans.json'))


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


def _miniature(work_root: str, *options: str) -> str:
    done = run_tool('benchmarks/miniature_paper.py', '--fast', '--work-root',
                    work_root, '--ablation-seeds', *options)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


NOISE_ARMS = ('--seeds', '0', '--arms', 'GA-DMS', 'constant scores')
HALLUCINATION_ARMS = ('--regime', 'hallucination', '--seeds', '0', '1',
                      '--sweep-seeds', '--arms', 'CLIP-SDM', 'oracle, hard')


def test_fast_miniature_runs_every_stage_and_resumes(tmp_path):
    root = str(tmp_path / 'miniature')
    _miniature(root, *NOISE_ARMS)
    with open(osp.join(root, 'results.json')) as f:
        rows = json.load(f)
    runs = sorted((r['arm'], r['seed']) for r in rows)
    # two arms: GA-DMS and a control derived from its seed 0 score bank
    assert runs == [('GA-DMS', 0), ('constant scores', 0)]
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
                    '### separation', 'constant scores',
                    'rank of the signed sum', 'distance to EOT'):
        assert section in report
    assert osp.getsize(osp.join(root, 'miniature_r1.png')) > 0

    # the hallucination regime: its own corpus (wrong colour words only),
    # stage 0 and the test sets shared
    _miniature(root, *HALLUCINATION_ARMS)
    regime = osp.join(root, 'hallucination')
    spans = json.load(open(osp.join(regime, 'corpus', 'noise_spans.json')))
    kinds = {kind for captions in spans.values()
             for found in captions.values() for kind, *_ in found}
    assert kinds == {'wrong_colour'}
    assert len(json.load(open(osp.join(regime, 'results.json')))) == 4
    curve = json.load(open(osp.join(regime, 'curve.json')))
    oracle, = [p for p in curve if p['arm'] == 'oracle, hard']
    assert oracle['auc'] == 1.0 and oracle['seeds'] == 2
    # a token scored 0 is masked almost always under the hard preset
    assert oracle['masked_noise'] > 0.99 and oracle['masked_attribute'] < 0.01
    assert len(oracle['R1 - CLIP-SDM']) == 2  # paired by seed: mean, SE
    report = open(osp.join(regime, 'report.md')).read()
    for section in ('### results', '### paired', '### scorers',
                    'oracle, hard - CLIP-SDM'):
        assert section in report
    assert osp.getsize(osp.join(regime, 'curve.png')) > 0

    # issue #35's setting (i): a benchmark-layout training set (identity
    # groups) and a guidance arm; its noise spans cover every caption
    _miniature(root, '--regime', 'hallucination-identity', '--seeds', '0',
               '--arms', 'CLIP-SDM', 'combined, hard')
    regime = osp.join(root, 'hallucination_identity')
    spans = json.load(open(osp.join(regime, 'train_set',
                                    'noise_spans.json')))
    assert sum(len(c) for c in spans.values()) == 6 * 4 * 2
    kinds = {kind for captions in spans.values()
             for found in captions.values() for kind, *_ in found}
    assert kinds == {'wrong_colour'}
    config = Config.fromfile(osp.join(regime, 'runs', 'combined_hard',
                                      'seed0', 'config.py'))
    dataset = config.train_dataloader.dataset
    assert (dataset.type, dataset.caption_groups) == ('CUHKPEDES',
                                                      'identity')
    combined, = [p for p in json.load(open(osp.join(regime, 'curve.json')))
                 if p['arm'] == 'combined, hard']
    assert 0 <= combined['auc'] <= 1 and combined['noise_tokens'] > 0
    assert '### scorers' in open(osp.join(regime, 'report.md')).read()

    # a second call trains nothing again
    stamp = osp.getmtime(osp.join(root, 'results.json'))
    _miniature(root, *NOISE_ARMS)
    assert osp.getmtime(osp.join(root, 'results.json')) == stamp


def test_paired_differences_by_hand():
    def row(arm, seed, r1, ap):
        return dict(arm=arm, seed=seed,
                    metrics={'t2i/R1': r1, 't2i/mAP': ap})

    rows = [row('a', 0, 10.0, 5.0), row('b', 0, 8.0, 6.0),
            row('a', 1, 12.0, 5.0), row('b', 1, 9.0, 4.0),
            row('a', 2, 11.0, 1.0)]  # seed 2 has no pair
    # R1 differences 2 and 3: mean 2.5, SE = stdev 0.7071 / sqrt(2) = 0.5
    assert paired_difference(rows, 'a', 'b', 'R1') == (2.5, 0.5, 2)
    # mAP differences -1 and 1: mean 0, SE 1
    assert paired_difference(rows, 'a', 'b', 'mAP') == (0.0, 1.0, 2)
    assert paired_difference(rows[:3], 'a', 'b', 'R1') is None
    # 95% t-intervals with 1 degree of freedom: mean +- 12.706 SE
    assert paired_table(rows, [('a', 'b')])[1] == [
        'a - b', '2', '+2.50', '0.50', '[-3.85, +8.85]', '+0.00', '1.00',
        '[-12.71, +12.71]']
