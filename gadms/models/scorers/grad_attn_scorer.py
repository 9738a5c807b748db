from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask, eot_positions, multi_scale_pool


@MODELS.register_module()
class GradAttnScorer(BaseTokenScorer):
    """Gradient-attention similarity score (GASS) of every caption token.

    Follows method.md section 3: a dense re-run of the last ``num_layers``
    text layers on the clean caption; the gradient of the summed matched
    image-text cosine similarities with respect to each layer's attention
    output (one ``torch.autograd.grad`` call, no parameter gradients), read
    at the EOT row; times the values, weighted by the min-max-normalised
    cosine between the multi-scale-pooled EOT query and every key; times
    the EOT attention row; summed over layers, ReLU, masked to content
    tokens and normalised to [0, 1] (min-max by default, see
    :class:`BaseTokenScorer`). Everything runs in fp32.

    Args:
        num_layers (int): Last text layers scored (8 for ViT-B/16).
        heads (int): Heads of the dense re-run (1 = released code).
        scales (Sequence[int]): MSP scales. Defaults to (1, 2).
        attn_norm (str): ``'paper'``: attention renormalised over the
            content tokens; ``'code'``: divided by the sum of the raw
            gradient scores over all positions (released code).
        relu (bool): Clip the layer sum at 0 (GASS). Most tokens of a
            caption can sum to a negative value and then tie at 0; with
            ``False`` the signed sum is kept, so ``norm='rank'`` can order
            them.
        norm, norm_scope, group_size, power: Score normalisation, see
            :class:`BaseTokenScorer`.

    Inputs of :meth:`forward`: ``backbone`` (``OpenCLIPBackbone``),
    ``text_ids [B, N]`` and ``image_tokens [B, 1 + HW, D]``. Output:
    detached fp32 scores ``[B, N]``; SOT, EOT and padding score 0.
    """

    def __init__(self,
                 num_layers: int = 8,
                 heads: int = 1,
                 scales: Sequence[int] = (1, 2),
                 attn_norm: str = 'paper',
                 relu: bool = True,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None,
                 norm: str = 'minmax',
                 power: float = 1.0) -> None:
        super().__init__(norm_scope, group_size, norm, power)
        if attn_norm not in ('paper', 'code'):
            raise ValueError(f"attn_norm must be 'paper' or 'code', got "
                             f'{attn_norm!r}')
        if not scales or any(int(c) != c or c < 1 for c in scales):
            raise ValueError(f'scales must be positive integers, got {scales}')
        self.num_layers = num_layers
        self.heads = heads
        self.scales = tuple(scales)
        self.attn_norm = attn_norm
        self.relu = relu

    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None) -> torch.Tensor:
        device_type = text_ids.device.type
        image_feats = backbone.pool_image(image_tokens).detach().float()
        with torch.enable_grad(), torch.autocast(device_type, enabled=False):
            raw = self._raw_scores(backbone, text_ids, image_feats)
        return self.normalise(raw, text_ids).detach()

    def _raw_scores(self, backbone: BaseCLIPBackbone, text_ids: torch.Tensor,
                    image_feats: torch.Tensor) -> torch.Tensor:
        """GASS before its normalisation: ``[B, N]``, 0 off content tokens.

        The steps of method.md section 3.2, in order:

        1. hybrid text forward: the last ``num_layers`` layers re-run by
           hand exposing Q, K, V, the EOT attention row and the attention
           output O (``encode_text_dense``);
        2. the matched similarity ``sum_b <u_b, t_b>`` of normalised
           features (each caption gets the gradient of its own pair);
        3. ``g = d sim / d O`` at the EOT row, per layer;
        4. multi-scale pooling of Q and K over ``scales``;
        5. the query-key weight: cosine of the pooled EOT query with every
           pooled key, min-max over the 77 positions;
        6. ``R = w * sum_d g_d V_jd`` (gradient x value x weight);
        7. the attention term: the paper's renormalised attention
           (``attn_norm='paper'``) or the released code's division by
           ``sum_j R`` (``'code'``), content tokens only;
        8. the sum over layers, with the ReLU (``relu=True``).

        Step 9 (normalisation) is :meth:`normalise`.
        """
        dense = backbone.encode_text_dense(text_ids, self.num_layers,
                                           self.heads)
        eot = eot_positions(text_ids)
        rows = torch.arange(text_ids.shape[0], device=text_ids.device)
        text_feats = F.normalize(dense.tokens[rows, eot].float(), dim=-1)
        similarity = (F.normalize(image_feats, dim=-1) * text_feats).sum()
        grads = torch.autograd.grad(similarity, dense.attn_outputs)
        # stack the layers: [L, B, N, W] (attention maps [L, B, N, N])
        grads, queries, keys, values, attn = (
            torch.stack(t).float()
            for t in (grads, dense.queries, dense.keys, dense.values,
                      dense.attn))
        eot_grad = grads[:, rows, eot]  # [L, B, W]
        eot_query = multi_scale_pool(queries, self.scales)[:, rows, eot]
        key_cos = F.cosine_similarity(
            eot_query[:, :, None], multi_scale_pool(keys, self.scales), dim=-1)
        low = key_cos.min(dim=-1, keepdim=True)[0]
        high = key_cos.max(dim=-1, keepdim=True)[0]
        key_weight = (key_cos - low) / (high - low + 1e-8)
        grad_value = key_weight * torch.einsum('lbw,lbnw->lbn', eot_grad,
                                               values)
        eot_attn = attn[:, rows, eot]  # [L, B, N]
        mask = content_mask(text_ids).float()
        if self.attn_norm == 'paper':
            masked_attn = eot_attn * mask
            layer_terms = grad_value * mask * masked_attn / (
                masked_attn.sum(dim=-1, keepdim=True) + 1e-8)
        else:
            layer_terms = grad_value * mask * eot_attn * mask / (
                grad_value.sum(dim=-1, keepdim=True) + 1e-8)
        summed = layer_terms.sum(dim=0)
        return mask * (summed.relu() if self.relu else summed)
