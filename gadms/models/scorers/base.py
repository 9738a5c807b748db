from abc import ABCMeta, abstractmethod
from typing import Optional

import torch
from torch import nn

from ..utils import check_norm_scope
from .utils import NORM_SCOPES, normalise_scores


class BaseTokenScorer(nn.Module, metaclass=ABCMeta):
    """Contract of the token scorers that guide GA-DMS's dual masking.

    A scorer maps a batch of clean captions and their images to one score
    in [0, 1] per caption token: :meth:`forward` takes the CLIP
    ``backbone``, ``text_ids [B, N]`` and ``image_tokens [B, 1 + HW, D]``
    (token 0 the global image feature) and returns detached fp32 ``[B,
    N]`` scores, 0 at SOT, EOT and padding. Subclasses compute raw
    non-negative scores and pass them through :meth:`normalise`.

    Args:
        norm_scope (str): Scope of the final min-max: ``'batch'`` (the
            global batch of every rank), ``'group'`` (consecutive groups of
            ``group_size`` captions of the global batch; the released
            code normalised over each GPU's batch) or ``'sample'``.
        group_size (int, optional): Captions per group of ``'group'``.
    """

    def __init__(self, norm_scope: str = 'batch',
                 group_size: Optional[int] = None) -> None:
        super().__init__()
        check_norm_scope(norm_scope, NORM_SCOPES, group_size)
        self.norm_scope = norm_scope
        self.group_size = group_size

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` raw scores -> [0, 1] in the configured scope."""
        return normalise_scores(raw, self.norm_scope, self.group_size)

    @abstractmethod
    def forward(self, backbone: nn.Module, text_ids: torch.Tensor,
                image_tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` ids and ``[B, 1 + HW, D]`` image tokens -> ``[B, N]``
        scores in [0, 1]."""
