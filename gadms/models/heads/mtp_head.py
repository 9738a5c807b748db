from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmengine.model import BaseModule
from open_clip.transformer import LayerNorm, QuickGELU, Transformer
from torch import nn

from gadms.datasets.transforms.tokenizer import VOCAB_SIZE
from gadms.registry import MODELS
from ..utils import (check_norm_scope, gather_constant, group_reduce,
                     row_groups)


@MODELS.register_module()
class MTPHead(BaseModule):
    """Masked token prediction from image-conditioned text (IRRA decoder).

    Text tokens (queries, ``[B, N, D]``) cross-attend to all image tokens
    (``[B, M, D]``, after ``ln_pre_t`` / ``ln_pre_i``), go through a
    ``depth``-layer bidirectional transformer and ``ln_post``, and an MLP
    (Linear, QuickGELU, LayerNorm, Linear) predicts the vocabulary. The loss
    is cross-entropy over the labelled positions (label != 0) only, and
    only those positions go through the vocabulary layer.

    Args:
        embed_dim (int): Width ``D`` (512 for ViT-B/16).
        depth (int): Transformer layers (4).
        heads (int): Attention heads (8).
        vocab_size (int): Output classes (49,408).
        loss_weight (float): ``beta`` of GA-DMS (paper 0.4, code 0.3).
        norm_scope (str): What the cross-entropy is averaged over:
            ``'batch'``, the masked tokens of the global batch; ``'group'``,
            the masked tokens of each group of ``group_size`` consecutive
            captions of the global batch, then the mean over groups. With
            ``group_size`` = the released per-GPU batch, ``'group'`` is the
            released code's per-GPU mean averaged by DDP, on any number of
            processes.
        group_size (int, optional): Captions per group of ``'group'``.
    """

    def __init__(self,
                 embed_dim: int = 512,
                 depth: int = 4,
                 heads: int = 8,
                 vocab_size: int = VOCAB_SIZE,
                 loss_weight: float = 1.0,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_norm_scope(norm_scope, ('batch', 'group'), group_size)
        self.loss_weight = loss_weight
        self.norm_scope = norm_scope
        self.group_size = group_size
        self.ln_pre_t = LayerNorm(embed_dim)
        self.ln_pre_i = LayerNorm(embed_dim)
        self.cross_attn = nn.MultiheadAttention(
            embed_dim, heads, batch_first=True)
        self.transformer = Transformer(
            embed_dim, depth, heads, act_layer=QuickGELU, batch_first=True)
        self.ln_post = LayerNorm(embed_dim)
        self.mlm_head = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), QuickGELU(),
            LayerNorm(embed_dim), nn.Linear(embed_dim, vocab_size))
        self._init_irra(embed_dim, depth)

    def _init_irra(self, width: int, depth: int) -> None:
        """IRRA's initialisation (method.md 2.4)."""
        attn_std = width**-0.5
        proj_std = width**-0.5 * (2 * depth)**-0.5
        fc_std = (2 * width)**-0.5
        attentions = [self.cross_attn] + [
            block.attn for block in self.transformer.resblocks
        ]
        for attn in attentions:
            nn.init.normal_(attn.in_proj_weight, std=attn_std)
            nn.init.normal_(attn.out_proj.weight, std=proj_std)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.mlm_head[0].weight, std=fc_std)
        nn.init.normal_(self.mlm_head[3].weight, std=proj_std)

    def forward(self, text_tokens: torch.Tensor,
                image_tokens: torch.Tensor) -> torch.Tensor:
        """``[B, N, D], [B, M, D] -> [B, N, D]`` decoded text tokens."""
        image = self.ln_pre_i(image_tokens)
        x = self.cross_attn(
            self.ln_pre_t(text_tokens), image, image, need_weights=False)[0]
        return self.ln_post(self.transformer(x))

    def loss(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor,
             labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy at the positions where ``labels [B, N]`` != 0.

        The loss is ``1/G sum_g (sum of CE in group g) / (masked tokens in
        group g)`` over the ``G`` groups of the global batch (one group for
        ``'batch'``). Each rank returns its rows' share times the world size,
        which DDP's gradient average divides out, so the loss does not
        depend on how masked tokens fall across processes.
        """
        hidden = self(text_tokens, image_tokens)
        selected = labels != 0
        rows = labels.shape[0]
        group_size = self.group_size if self.norm_scope == 'group' \
            else rows * get_world_size()
        groups = row_groups(rows, group_size, labels.device)
        counts = group_reduce(
            gather_constant(selected.sum(dim=1)).float(), groups.all,
            groups.count, 'sum')
        if not selected.any():
            # keep every parameter in the graph (DDP) with a zero loss
            return dict(loss_mtp=hidden.sum() * 0.0)
        logits = self.mlm_head(hidden[selected])
        token_losses = F.cross_entropy(
            logits.float(), labels[selected], reduction='none')
        # each token divided by its group's masked count
        token_groups = groups.local[:, None].expand_as(labels)[selected]
        loss = (token_losses / counts[token_groups]).sum() * (
            get_world_size() / groups.count)
        return dict(loss_mtp=self.loss_weight * loss)
