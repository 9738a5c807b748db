from typing import Dict

import torch
from mmengine.model import BaseModule
from open_clip.transformer import LayerNorm, QuickGELU, Transformer
from torch import nn

from gadms.datasets.transforms.tokenizer import VOCAB_SIZE
from gadms.registry import MODELS


@MODELS.register_module()
class MTPHead(BaseModule):
    """Masked token prediction from image-conditioned text (IRRA decoder).

    Text tokens (queries, ``[B, N, D]``) cross-attend to all image tokens
    (``[B, M, D]``, after ``ln_pre_t`` / ``ln_pre_i``), go through a
    ``depth``-layer bidirectional transformer and ``ln_post``, and an MLP
    (Linear, QuickGELU, LayerNorm, Linear) predicts the vocabulary at the
    labelled positions (label != 0) only, and ``loss`` (a
    :class:`~gadms.models.losses.MaskedTokenLoss` by default) scores them.

    Args:
        embed_dim (int): Width ``D`` (512 for ViT-B/16).
        depth (int): Transformer layers (4).
        heads (int): Attention heads (8).
        vocab_size (int): Output classes (49,408).
        loss (dict): Config of the loss of the predictions; its
            ``loss_weight`` is GA-DMS's ``beta`` (paper 0.4, code 0.3), its
            ``norm_scope`` / ``group_size`` what the cross-entropy is
            averaged over (see :class:`MaskedTokenLoss`).
        loss_name (str): Name of the logged loss: ``'loss_mtp'`` for GA-DMS's
            score-guided masked token prediction, ``'loss_mlm'`` for the
            fine-tuning's random 15% masked language modelling.
    """

    def __init__(self,
                 embed_dim: int = 512,
                 depth: int = 4,
                 heads: int = 8,
                 vocab_size: int = VOCAB_SIZE,
                 loss: dict = dict(type='MaskedTokenLoss'),
                 loss_name: str = 'loss_mtp',
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not loss_name.startswith('loss'):
            raise ValueError("loss_name must start with 'loss' (MMEngine "
                             f'sums only those), got {loss_name!r}')
        self.loss_module = MODELS.build(loss)
        self.loss_name = loss_name
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
        """``{loss_name: scalar}``: the predictions at the positions where
        ``labels [B, N]`` != 0, scored by the loss module (every rank calls
        it, even without masked tokens: it gathers the masked counts)."""
        hidden = self(text_tokens, image_tokens)
        selected = labels != 0
        loss = self.loss_module(self.mlm_head(hidden[selected]), labels)
        if not selected.any():
            # keep every parameter in the graph (DDP) with a zero loss
            loss = loss + hidden.sum() * 0.0
        return {self.loss_name: loss}
