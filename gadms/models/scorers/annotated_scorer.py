from typing import Optional

import torch

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask

MIXES = ('min', 'product')


@MODELS.register_module()
class AnnotatedTokenScorer(BaseTokenScorer):
    """Token scores from annotations the dataset carries: the upper bound
    of guidance when the annotation is the truth (an *oracle*), or a real
    signal such as an MLLM's word probabilities.

    The data pipeline places each caption's annotation on its tokens
    (``AnnotateTokens``: 0 on tokens of spans marked as noise and 1
    elsewhere, or per-word confidences), packed as the metainfo
    ``token_annotation`` ``[1, N]`` of each data sample. The scores are
    these values on content tokens, 0 at SOT, EOT and padding, with no
    normalisation. With ``mix_with``, another scorer's ``[B, N]`` scores
    are combined with them token by token: ``'min'`` (a token is as
    trusted as the less trusting of the two) or ``'product'``.

    Args:
        mix_with (dict, optional): Config of a scorer to combine with
            (e.g. ``dict(type='GradAttnScorer')``).
        mix (str): ``'min'`` or ``'product'``.
        key (str): The metainfo read. Defaults to ``'token_annotation'``.
    """

    # the transform that writes ``key``, named in the error without it
    TRANSFORM = 'AnnotateTokens'

    def __init__(self, mix_with: Optional[dict] = None,
                 mix: str = 'min', key: str = 'token_annotation') -> None:
        super().__init__()
        if mix not in MIXES:
            raise ValueError(f'mix must be one of {MIXES}, got {mix!r}')
        self.mix_with = MODELS.build(mix_with) if mix_with else None
        self.mix = mix
        self.key = key

    def annotations(self, data_samples: Optional[list],
                    text_ids: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` token annotations of the batch, checked against
        ``text_ids [B, N]``."""
        if not data_samples or any(self.key not in sample
                                   for sample in data_samples):
            raise ValueError(
                f'{type(self).__name__} needs data samples with '
                f"{self.key!r}: add dict(type='{self.TRANSFORM}') after "
                'TokenizeCaption in the training pipeline')
        values = torch.as_tensor(
            torch.stack([torch.as_tensor(s.get(self.key))[0]
                         for s in data_samples]),
            dtype=torch.float32, device=text_ids.device)
        if values.shape != text_ids.shape:
            raise ValueError(f'token annotations of shape '
                             f'{tuple(values.shape)} for caption ids of '
                             f'shape {tuple(text_ids.shape)}')
        return values

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        scores = self.annotations(data_samples, text_ids) * content_mask(
            text_ids)
        if self.mix_with is None:
            return scores
        other = self.mix_with(backbone, text_ids, image_tokens, data_samples)
        if self.mix == 'min':
            return torch.minimum(scores, other)
        return scores * other


@MODELS.register_module()
class ConsensusTokenScorer(AnnotatedTokenScorer):
    """Token scores from caption consensus: each colour word scores the
    fraction of the other captions of its image or identity that state the
    same colour for the same garment (``ConsensusTokens`` computes them in
    the data pipeline), other content tokens 1. The values of
    :class:`AnnotatedTokenScorer` read from ``'token_consensus'``.

    Args:
        key (str): The metainfo read. Defaults to ``'token_consensus'``.
        mix_with, mix: See :class:`AnnotatedTokenScorer`.
    """

    TRANSFORM = 'ConsensusTokens'

    def __init__(self, key: str = 'token_consensus',
                 mix_with: Optional[dict] = None, mix: str = 'min') -> None:
        super().__init__(mix_with=mix_with, mix=mix, key=key)
