from typing import Optional

import torch
import torch.nn.functional as F

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask


@MODELS.register_module()
class CosineScorer(BaseTokenScorer):
    """Ablation scorer CSS: each token's best cosine match among patches.

    ``E[b, j] = max_p cos(text_token[b, j], image_patch[b, p])`` with the
    final projected text tokens and image patch tokens (token 0, the global
    feature, is excluded), clipped at 0, masked to content tokens and
    min-max normalised. (NAM reads layer-10 features; gadms uses the final
    ones, which every backbone exposes.) Inputs and output as in
    :class:`GradAttnScorer`.

    Args:
        norm, norm_scope, group_size, power: Score normalisation, see
            :class:`BaseTokenScorer`.
    """

    def __init__(self,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None,
                 norm: str = 'minmax',
                 power: float = 1.0) -> None:
        super().__init__(norm_scope, group_size, norm, power)

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        text_tokens = F.normalize(
            backbone.encode_text(text_ids).float(), dim=-1)
        patches = F.normalize(image_tokens[:, 1:].float(), dim=-1)
        best = torch.einsum('bnd,bpd->bnp', text_tokens,
                            patches).amax(dim=-1)
        raw = content_mask(text_ids) * best.clamp(min=0)
        return self.normalise(raw, text_ids)
