"""AnnotatedTokenScorer: the dataset's token annotations as scores, alone
or mixed with another scorer, written into GA-DMS's score bank."""
import numpy as np
import pytest
import torch
from common import EOT, SOT
from test_gadms import _batch, _model

from gadms.models.score_bank import TokenScoreBank
from gadms.registry import MODELS
from gadms.structures import TextPersonDataSample


def _annotated(batch: dict, seed: int = 1) -> torch.Tensor:
    """Give each sample of ``batch`` a random annotation row (values on
    every position, as AnnotateTokens' rows are not: the scorer must zero
    SOT, EOT and padding itself); returns them ``[B, 77]``."""
    generator = np.random.default_rng(seed)
    rows = generator.random((len(batch['data_samples']), 77)).astype(
        np.float32)
    for sample, row in zip(batch['data_samples'], rows):
        sample.set_metainfo(dict(token_annotation=row[None]))
    return torch.from_numpy(rows)


def _content(text_ids: torch.Tensor) -> torch.Tensor:
    """Content positions, by hand: after SOT, before EOT."""
    eot = (text_ids == EOT).int().argmax(dim=1, keepdim=True)
    positions = torch.arange(text_ids.shape[1])[None]
    return (positions > 0) & (positions < eot)


def test_scores_are_the_annotations_on_content_tokens():
    batch = _batch()
    rows = _annotated(batch)
    text_ids = torch.cat([s.text_ids for s in batch['data_samples']])
    assert (text_ids[:, 0] == SOT).all()
    scorer = MODELS.build(dict(type='AnnotatedTokenScorer'))
    scores = scorer(None, text_ids, None, batch['data_samples'])
    torch.testing.assert_close(scores, rows * _content(text_ids))


@pytest.mark.parametrize('mix', ['min', 'product'])
def test_mixed_with_another_scorer(mix):
    batch = _batch()
    rows = _annotated(batch)
    text_ids = torch.cat([s.text_ids for s in batch['data_samples']])
    scorer = MODELS.build(dict(type='AnnotatedTokenScorer', mix=mix,
                               mix_with=dict(type='RandomScorer',
                                             value=0.5)))
    scores = scorer(None, text_ids, None, batch['data_samples'])
    combined = rows.clamp(max=0.5) if mix == 'min' else rows * 0.5
    torch.testing.assert_close(scores, combined * _content(text_ids))


def test_missing_annotations_name_the_transform():
    batch = _batch()
    text_ids = torch.cat([s.text_ids for s in batch['data_samples']])
    scorer = MODELS.build(dict(type='AnnotatedTokenScorer'))
    with pytest.raises(ValueError, match="dict\\(type='AnnotateTokens'\\)"):
        scorer(None, text_ids, None, batch['data_samples'])
    with pytest.raises(ValueError, match='mix must be one of'):
        MODELS.build(dict(type='AnnotatedTokenScorer', mix='max'))
    short = [TextPersonDataSample(token_annotation=np.ones((1, 10)))] * 4
    with pytest.raises(ValueError, match=r'of shape \(4, 10\) for caption '
                       r'ids of shape \(4, 77\)'):
        scorer(None, text_ids, None, short)


def test_a_training_step_writes_the_annotations_into_the_bank():
    model = _model(scorer=dict(type='AnnotatedTokenScorer'))
    model.score_bank = TokenScoreBank(20, init_value=0.85)
    batch = _batch()
    rows = _annotated(batch)
    data = model.data_preprocessor(batch, True)
    model(**data, mode='loss')
    text_ids = data['inputs']['text_ids']
    torch.testing.assert_close(model.score_bank.read(torch.arange(10, 14)),
                               rows * _content(text_ids), atol=1e-3,
                               rtol=0)
