"""Consensus values of caption tokens: does an independent caption of the
same image (or identity) state the same colour for the same garment?

A hallucinated attribute is rarely repeated by an independent caption, so
the agreement of a colour word with the other captions of its group tells
a false word from a true one where a model's attention cannot (issue #35).
"""
from typing import Optional

import numpy as np

from gadms.registry import TRANSFORMS
from ..attribute_lexicon import AttributeLexicon, consensus_spans
from .text import CaptionTokensTransform
from .token_annotation import characters_to_tokens
from .tokenizer import get_tokenizer


@TRANSFORMS.register_module()
class ConsensusTokens(CaptionTokensTransform):
    """Give every token of a training caption its consensus value, for
    :class:`~gadms.models.scorers.ConsensusTokenScorer`.

    A colour word gets the fraction of the *other* captions of its group
    that state the same colour for the same garment class, among those
    that state that garment at all; a colour word whose garment no other
    caption states, or that describes no garment, gets ``neutral``; every
    other content token gets 1 (``AttributeLexicon`` and
    ``consensus_spans`` define the statements).

    **Required Keys:** ``captions`` (the sample's one caption),
    ``group_captions`` (every caption of its group: its image's or its
    identity's, as the dataset's ``caption_groups`` option gives them) and
    ``group_index`` (the sample's caption among them).

    **Added Keys:** ``key`` (np.ndarray float32 ``[1, context_length]``,
    aligned with ``text_ids``; 0 at SOT, EOT and padding).

    Args:
        lexicon (dict): The attribute lexicon, ``dict(colours=...,
            garments=..., max_gap=...)`` (see ``AttributeLexicon``);
            ``configs/_base_/lexicons/`` has the shipped ones.
        neutral (float): Value of a colour word no other caption can
            confirm or contradict. Defaults to 0.5.
        key (str): Result key. Defaults to ``'token_consensus'``.
        context_length (int): Tokens per caption. Defaults to 77.
    """

    def __init__(self, lexicon: dict, neutral: float = 0.5,
                 key: str = 'token_consensus',
                 context_length: int = 77) -> None:
        super().__init__(context_length)
        if not 0.0 <= neutral <= 1.0:
            raise ValueError(f'neutral must be in [0, 1], got {neutral!r}')
        self.lexicon = AttributeLexicon.build(lexicon)
        self.neutral = neutral
        self.key = key

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(neutral={self.neutral}, '
                f'key={self.key!r}, context_length={self.context_length})')

    def transform(self, results: dict) -> Optional[dict]:
        where = f'{results.get("img_path")}, caption ' \
                f'{results.get("caption_idx", 0)}'
        group = results.get('group_captions')
        index = results.get('group_index')
        if group is None or index is None:
            raise ValueError(
                f'{where}: ConsensusTokens needs the caption\'s group: set '
                "caption_groups='image' or 'identity' on the training "
                'dataset')
        caption, = results['captions']
        if not 0 <= index < len(group) or group[index] != caption:
            raise ValueError(f'{where}: group_index {index} does not point '
                             f'to the sample\'s caption {caption!r} in its '
                             f'group of {len(group)}')
        characters = np.ones(len(caption), dtype=np.float32)
        spans = consensus_spans(group, self.lexicon, self.neutral)[index]
        for start, end, value in spans:
            characters[start:end] = value
        results[self.key] = characters_to_tokens(
            caption, characters, get_tokenizer(self.context_length),
            where)[None]
        return results
