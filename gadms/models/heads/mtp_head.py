from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmengine.model import BaseModule
from open_clip.transformer import LayerNorm, QuickGELU, Transformer
from torch import nn

from gadms.datasets.transforms.tokenizer import VOCAB_SIZE
from gadms.registry import MODELS
from ..utils import all_reduce_sum


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
    """

    def __init__(self,
                 embed_dim: int = 512,
                 depth: int = 4,
                 heads: int = 8,
                 vocab_size: int = VOCAB_SIZE,
                 loss_weight: float = 1.0,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_weight = loss_weight
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

        The mean is over the masked positions of the global batch: this
        rank's sum is divided by the count over all ranks (times the world
        size, which DDP's gradient average divides out), so the loss does
        not depend on how masked tokens fall across processes.
        """
        hidden = self(text_tokens, image_tokens)
        selected = labels != 0
        global_count = all_reduce_sum(selected.sum())
        if not selected.any():
            # keep every parameter in the graph (DDP) with a zero loss
            return dict(loss_mtp=hidden.sum() * 0.0)
        logits = self.mlm_head(hidden[selected])
        total = F.cross_entropy(
            logits.float(), labels[selected], reduction='sum')
        loss = total * get_world_size() / global_count
        return dict(loss_mtp=self.loss_weight * loss)
