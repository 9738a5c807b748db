import inspect
from typing import List, Optional

import torch

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer

MODES = ('min', 'product', 'tiebreak')


@MODELS.register_module()
class CombinedTokenScorer(BaseTokenScorer):
    """Token scores combined from several scorers, token by token.

    - ``'min'``: a token is as trusted as the least trusting scorer;
    - ``'product'``: the product of the scores;
    - ``'tiebreak'`` (two scorers): the first scorer decides, except where
      it scores a token ``tie_max`` or less: there the second decides.
      With caption consensus first and the counterfactual check second,
      a colour word that its group contradicts (consensus 0: for an image
      with two captions, *both* words of a disagreement) is flagged only
      if the model also prefers another colour, so the pair keeps its
      correct word. A second scorer that takes ``positions`` (as
      ``CounterfactualTokenScorer`` does) scores only the tied tokens.

    Args:
        scorers (list[dict]): Configs of the scorers, e.g.
            ``[dict(type='ConsensusTokenScorer'),
            dict(type='CounterfactualTokenScorer', lexicon=...,
            output='win')]``; an MLLM's word confidences enter as
            ``dict(type='AnnotatedTokenScorer')``.
        mode (str): ``'min'``, ``'product'`` or ``'tiebreak'``.
        tie_max (float): Scores of the first scorer at or below which
            ``'tiebreak'`` asks the second. Defaults to 0.

    Output: detached fp32 ``[B, N]``, 0 at SOT, EOT and padding (where
    every scorer gives 0).
    """

    def __init__(self, scorers: List[dict], mode: str = 'min',
                 tie_max: float = 0.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        wanted = 'two' if mode == 'tiebreak' else 'one or more'
        if not scorers or (mode == 'tiebreak' and len(scorers) != 2):
            raise ValueError(f'mode={mode!r} combines {wanted} scorers, got '
                             f'{len(scorers or [])}')
        self.scorers = torch.nn.ModuleList(
            MODELS.build(scorer) for scorer in scorers)
        self.mode = mode
        self.tie_max = tie_max

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        if self.mode == 'tiebreak':
            return self._tiebreak(backbone, text_ids, image_tokens,
                                  data_samples)
        scores = torch.stack([
            scorer(backbone, text_ids, image_tokens, data_samples)
            for scorer in self.scorers])
        if self.mode == 'min':
            return scores.min(dim=0)[0]
        return scores.prod(dim=0)

    def _tiebreak(self, backbone: BaseCLIPBackbone, text_ids: torch.Tensor,
                  image_tokens: torch.Tensor,
                  data_samples: Optional[list]) -> torch.Tensor:
        """The first scorer's scores, the second's where the first's are
        ``tie_max`` or less (asking the second for those tokens only when
        its ``forward`` takes ``positions``)."""
        first_scorer, second_scorer = self.scorers
        first = first_scorer(backbone, text_ids, image_tokens, data_samples)
        tied = first <= self.tie_max
        only_tied = 'positions' in inspect.signature(
            second_scorer.forward).parameters
        second = second_scorer(backbone, text_ids, image_tokens,
                               data_samples,
                               **(dict(positions=tied) if only_tied else {}))
        return torch.where(tied, second, first)
