from typing import Optional

import torch

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask


@MODELS.register_module()
class RandomScorer(BaseTokenScorer):
    """Control scorer: uniform random scores, or a constant.

    Content tokens get ``U(0, 1)`` draws (or ``value`` when given); SOT,
    EOT and padding get 0, with no normalisation. Inputs and output as in
    :class:`BaseTokenScorer`.

    Args:
        value (float, optional): Constant score instead of random draws.
    """

    def __init__(self, value: Optional[float] = None) -> None:
        super().__init__()
        self.value = value

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        mask = content_mask(text_ids).float()
        if self.value is not None:
            return mask * self.value
        return mask * torch.rand(text_ids.shape, device=text_ids.device)
