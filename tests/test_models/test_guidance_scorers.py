"""The counterfactual check of colour words against a brute-force loop over
substituted captions, and CombinedTokenScorer against hand-computed
combinations (issue #35)."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from common import EOT, SOT
from tiny_models import tiny_backbone_cfg

from gadms.cli import register_all_modules
from gadms.datasets.transforms import get_tokenizer
from gadms.registry import MODELS
from gadms.structures import TextPersonDataSample

TOKENIZER = get_tokenizer(77)
LEXICON = dict(
    colours=dict(red=['red'], blue=['blue'], grey=['grey', 'gray'],
                 navy=['dark blue', 'navy'], black=['black']),
    garments=dict(upper=['coat'], lower=['pants']))
CAPTIONS = [
    'a man in a gray coat and dark blue pants.',
    'red red shoes and a navy bag',
    'no colour word here at all',
    'blue ' + 'word ' * 73 + 'end',  # a variant with 'dark blue' is cut
    'a shredded coat, reddish',  # no whole colour word
]


@torch.no_grad()
def _brute_force(backbone, captions, images, temperature, output):
    """Per caption, each colour word found in the text (longest form
    first), the caption written again with every other colour's first
    form in its place, each variant tokenised and encoded alone."""
    forms = sorted(((form, name) for name, surfaces in
                    LEXICON['colours'].items() for form in surfaces),
                   key=lambda f: -len(f[0]))
    pattern = re.compile(r'\b(' + '|'.join(re.escape(f) for f, _ in forms)
                         + r')\b')
    colour_of = dict(forms)
    image_feats = F.normalize(backbone.pool_image(images).float(), dim=-1)
    ids = torch.from_numpy(TOKENIZER(captions))
    expected = torch.zeros(ids.shape)
    for row, caption in enumerate(captions):
        eot = int((ids[row] == EOT).nonzero()[0])
        expected[row, 1:eot] = 1.0
        for match in pattern.finditer(caption):
            own = colour_of[match.group()]
            texts = [caption] + [
                caption[:match.start()] + surfaces[0] + caption[match.end():]
                for name, surfaces in LEXICON['colours'].items()
                if name != own]
            text_ids = torch.from_numpy(TOKENIZER(texts))
            feats = F.normalize(backbone.pool_text(
                backbone.encode_text(text_ids), text_ids).float(), dim=-1)
            sims = feats @ image_feats[row]
            if output == 'win':
                score = float(sims[0] >= sims[1:].max())
            else:
                score = float((sims / temperature).softmax(0)[0])
            first = 1 + len(TOKENIZER.encode(caption[:match.start()]))
            last = 1 + len(TOKENIZER.encode(caption[:match.end()]))
            expected[row, first:last] = torch.minimum(
                expected[row, first:last], torch.tensor(score))
    return ids, expected


@pytest.mark.parametrize('output,temperature', [('weight', 0.05),
                                                ('weight', 1.0),
                                                ('win', 0.05)])
def test_counterfactual_scores_equal_a_loop_over_substitutions(
        output, temperature):
    register_all_modules()
    torch.manual_seed(0)
    backbone = MODELS.build(tiny_backbone_cfg()).eval()
    images = backbone.encode_image(torch.randn(len(CAPTIONS), 3, 32, 16))
    ids, expected = _brute_force(backbone, CAPTIONS, images, temperature,
                                 output)
    assert ids[3, -1] == EOT  # the long caption fills the context
    scorer = MODELS.build(dict(type='CounterfactualTokenScorer',
                               lexicon=LEXICON, temperature=temperature,
                               output=output))
    scores = scorer(backbone, ids, images)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    if output == 'weight':  # gray, dark blue (2), red, red, navy, blue
        assert int(((expected > 0) & (expected < 1)).sum()) == 7


def test_colour_words_are_found_on_whole_words_only():
    """A word's last piece that spells a colour ('...red</w>' after a piece
    that does not end a word) is not a colour word; after SOT or a whole
    word it is; padding and EOT never are."""
    scorer = MODELS.build(dict(type='CounterfactualTokenScorer',
                               lexicon=LEXICON))
    red, = TOKENIZER.encode('red')
    decoder = TOKENIZER._bpe.decoder
    inside = next(i for i in range(300, 40000)
                  if not decoder[i].endswith('</w>'))
    ids = torch.zeros(3, 77, dtype=torch.long)
    ids[:, 0] = SOT
    ids[0, 1:4] = torch.tensor([inside, red, EOT])
    ids[1, 1:4] = torch.tensor([red, red, EOT])
    ids[2, 1:3] = torch.tensor([TOKENIZER.encode('coat')[0], EOT])
    words = scorer.find_colours(ids)
    assert sorted(map(tuple, words.tolist())) == [(1, 1, 1, 0), (1, 2, 1, 0)]


def test_variants_write_every_colour_in_the_word_s_place():
    scorer = MODELS.build(dict(type='CounterfactualTokenScorer',
                               lexicon=LEXICON))
    caption = 'a dark blue coat'
    ids = torch.from_numpy(TOKENIZER([caption]))
    words = scorer.find_colours(ids)
    assert words.tolist() == [[0, 2, 2, 3]]  # 'dark blue' is navy
    variants = scorer.variants(ids, words)[0]
    for k, (name, surfaces) in enumerate(LEXICON['colours'].items()):
        text = f'a {surfaces[0]} coat'
        assert variants[k].tolist() == TOKENIZER([text])[0].tolist(), name


def _samples(rows) -> list:
    samples = []
    for key, values in rows.items():
        for index, row in enumerate(values):
            if len(samples) <= index:
                samples.append(TextPersonDataSample())
            samples[index].set_metainfo({key: np.array([row], np.float32)})
    return samples


@pytest.mark.parametrize('mode', ['min', 'product', 'tiebreak'])
def test_combined_scores_by_hand(mode):
    """Two annotated scorers on one caption of 4 content tokens."""
    ids = torch.zeros(1, 77, dtype=torch.long)
    ids[0, :6] = torch.tensor([SOT, 10, 11, 12, 13, EOT])
    first = [0.0] * 77
    second = [0.0] * 77
    first[1:5] = [0.0, 0.5, 1.0, 0.0]
    second[1:5] = [1.0, 0.2, 0.0, 0.0]
    scorer = MODELS.build(dict(
        type='CombinedTokenScorer', mode=mode,
        scorers=[dict(type='AnnotatedTokenScorer', key='a'),
                 dict(type='AnnotatedTokenScorer', key='b')]))
    scores = scorer(None, ids, None, _samples(dict(a=[first], b=[second])))
    expected = dict(min=[0.0, 0.2, 0.0, 0.0], product=[0.0, 0.1, 0.0, 0.0],
                    tiebreak=[1.0, 0.5, 1.0, 0.0])[mode]
    torch.testing.assert_close(scores[0, 1:5], torch.tensor(expected))
    assert scores[0, 0] == 0 and (scores[0, 5:] == 0).all()


def test_combined_scorer_checks_its_scorers():
    with pytest.raises(ValueError, match="mode='tiebreak' combines two "
                       'scorers, got 3'):
        MODELS.build(dict(type='CombinedTokenScorer', mode='tiebreak',
                          scorers=[dict(type='RandomScorer')] * 3))
    with pytest.raises(ValueError, match='mode must be one of'):
        MODELS.build(dict(type='CombinedTokenScorer', mode='max',
                          scorers=[dict(type='RandomScorer')]))


def test_consensus_scorer_reads_its_key_and_names_its_transform():
    ids = torch.zeros(1, 77, dtype=torch.long)
    ids[0, :4] = torch.tensor([SOT, 10, 11, EOT])
    row = [0.0, 0.25, 1.0] + [0.0] * 74
    scorer = MODELS.build(dict(type='ConsensusTokenScorer'))
    scores = scorer(None, ids, None, _samples(dict(token_consensus=[row])))
    torch.testing.assert_close(scores[0, :4], torch.tensor(
        [0.0, 0.25, 1.0, 0.0]))
    with pytest.raises(ValueError, match="'token_consensus': add dict\\("
                       "type='ConsensusTokens'\\)"):
        scorer(None, ids, None, _samples(dict(token_annotation=[row])))


def test_counterfactual_checks_only_the_words_asked_for():
    """With ``positions``, only the colour words with a token there are
    checked (one forward of their variants); the others score 1. As the
    tie-break of a combined scorer it is asked for the tied tokens only,
    and gives the scores it gives when asked for everything."""
    register_all_modules()
    torch.manual_seed(0)
    backbone = MODELS.build(tiny_backbone_cfg()).eval()
    captions = CAPTIONS[:2]  # gray, dark blue | red, red, navy
    images = backbone.encode_image(torch.randn(2, 3, 32, 16))
    ids = torch.from_numpy(TOKENIZER(captions))
    scorer = MODELS.build(dict(type='CounterfactualTokenScorer',
                               lexicon=LEXICON, temperature=0.05))
    full = scorer(backbone, ids, images)
    gray = 1 + len(TOKENIZER.encode('a man in a'))
    asked = torch.zeros_like(ids, dtype=torch.bool)
    asked[0, gray] = True
    rows = []
    original = backbone.encode_text
    backbone.encode_text = lambda x: rows.append(len(x)) or original(x)
    some = scorer(backbone, ids, images, positions=asked)
    backbone.encode_text = original
    assert rows == [len(LEXICON['colours'])]  # one word's variants
    expected = (ids > 0).float() * (ids != SOT) * (ids != EOT)
    expected[0, gray] = full[0, gray]
    torch.testing.assert_close(some, expected)

    first = torch.ones(2, 77)
    first[0, gray] = 0.0  # the tie: the counterfactual decides there
    samples = _samples(dict(token_annotation=first.numpy()))
    combined = MODELS.build(dict(
        type='CombinedTokenScorer', mode='tiebreak', scorers=[
            dict(type='AnnotatedTokenScorer'),
            dict(type='CounterfactualTokenScorer', lexicon=LEXICON,
                 temperature=0.05)]))
    rows.clear()
    backbone.encode_text = lambda x: rows.append(len(x)) or original(x)
    scores = combined(backbone, ids, images, samples)
    backbone.encode_text = original
    assert rows == [len(LEXICON['colours'])]
    content = (ids > 0) & (ids != SOT) & (ids != EOT)
    torch.testing.assert_close(
        scores, torch.where(first == 0, full, first) * content)
