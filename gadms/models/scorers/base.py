from abc import ABCMeta, abstractmethod
from typing import Optional

import torch
from torch import nn

from ..backbones import BaseCLIPBackbone
from ..utils import check_norm_scope
from .utils import NORM_SCOPES, content_mask, normalise_scores, rank_scores

NORMS = ('minmax', 'rank')


class BaseTokenScorer(nn.Module, metaclass=ABCMeta):
    """Contract of the token scorers that guide GA-DMS's dual masking.

    A scorer maps a batch of clean captions and their images to one score
    in [0, 1] per caption token: :meth:`forward` takes the CLIP
    ``backbone``, ``text_ids [B, N]`` and ``image_tokens [B, 1 + HW, D]``
    (token 0 the global image feature), and the batch's ``data_samples``
    for scorers that read what the dataset carries
    (:class:`AnnotatedTokenScorer`), and returns detached fp32 ``[B, N]``
    scores, 0 at SOT, EOT and padding. Subclasses compute raw
    non-negative scores and pass them through :meth:`normalise`.

    Normalisation: ``'minmax'`` (GA-DMS) maps the raw scores to [0, 1] by
    the min and max of ``norm_scope``; a heavy-tailed score leaves most
    tokens near 0 there, so the dual mask's thresholds (s = 0.1) act almost
    uniformly. ``'rank'`` replaces each content token's score by its rank
    within its caption (0 lowest, 1 highest), so the thresholds act on a
    fixed fraction of every caption. ``power`` then maps ``s`` to ``s **
    power`` (< 1 lifts small scores, > 1 lowers them).

    Args:
        norm (str): ``'minmax'`` or ``'rank'``.
        norm_scope (str): Scope of the min-max: ``'batch'`` (the global
            batch of every rank), ``'group'`` (consecutive groups of
            ``group_size`` captions of the global batch; the released code
            normalised over each GPU's batch) or ``'sample'``.
        group_size (int, optional): Captions per group of ``'group'``.
        power (float): Exponent applied after the normalisation (1: none).
    """

    def __init__(self,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None,
                 norm: str = 'minmax',
                 power: float = 1.0) -> None:
        super().__init__()
        check_norm_scope(norm_scope, NORM_SCOPES, group_size)
        if norm not in NORMS:
            raise ValueError(f'norm must be one of {NORMS}, got {norm!r}')
        if power <= 0:
            raise ValueError(f'power must be > 0, got {power}')
        self.norm_scope = norm_scope
        self.group_size = group_size
        self.norm = norm
        self.power = power

    def normalise(self, raw: torch.Tensor,
                  text_ids: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` raw scores of ``text_ids [B, N]`` -> [0, 1], 0 at
        SOT, EOT and padding."""
        content = content_mask(text_ids)
        if self.norm == 'rank':
            scores = rank_scores(raw, content)
        else:
            scores = normalise_scores(raw, self.norm_scope, self.group_size)
        if self.power != 1.0:
            scores = scores.pow(self.power)
        return scores * content

    @abstractmethod
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        """``[B, N]`` ids and ``[B, 1 + HW, D]`` image tokens -> ``[B, N]``
        scores in [0, 1]."""
