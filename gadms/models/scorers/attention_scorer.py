from typing import Optional

import torch

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask, eot_positions


@MODELS.register_module()
class AttentionScorer(BaseTokenScorer):
    """Ablation scorer: the EOT attention row alone, summed over layers.

    ``E = mask * sum_l A_l[EOT, :]`` over the last ``num_layers`` text
    layers (no gradient term), then min-max normalised like
    :class:`GradAttnScorer`. Inputs and output as in that class.

    Args:
        num_layers (int): Last text layers read.
        heads (int): Heads of the dense re-run.
        norm, norm_scope, group_size, power: Score normalisation, see
            :class:`BaseTokenScorer`.
    """

    def __init__(self,
                 num_layers: int = 8,
                 heads: int = 1,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None,
                 norm: str = 'minmax',
                 power: float = 1.0) -> None:
        super().__init__(norm_scope, group_size, norm, power)
        self.num_layers = num_layers
        self.heads = heads

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        dense = backbone.encode_text_dense(text_ids, self.num_layers,
                                           self.heads)
        rows = torch.arange(text_ids.shape[0], device=text_ids.device)
        eot_attn = torch.stack(dense.attn).float()[:, rows,
                                                   eot_positions(text_ids)]
        raw = content_mask(text_ids) * eot_attn.sum(dim=0)
        return self.normalise(raw, text_ids)
