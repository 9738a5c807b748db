from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size
from torch import nn

from gadms.registry import MODELS
from ..utils import check_norm_scope, gather_constant, group_reduce, row_groups


@MODELS.register_module()
class MaskedTokenLoss(nn.Module):
    """Cross-entropy of masked-token predictions (IRRA's MLM, GA-DMS's MTP).

    Only the masked positions (``labels != 0``) are predicted. The loss is
    ``loss_weight * 1/G sum_g (sum of CE in group g) / (masked tokens in
    group g)`` over the ``G`` groups of the global batch: one group
    (``'batch'``: the mean over every masked token of every rank), or
    consecutive groups of ``group_size`` captions (``'group'``: with the
    released per-GPU batch, the released code's per-GPU mean averaged by
    DDP). Each rank returns its rows' share times the world size, which
    DDP's gradient average divides out, so the loss does not depend on how
    the masked tokens fall across processes.

    Args:
        loss_weight (float): Multiplier (GA-DMS's ``beta``: paper 0.4,
            code 0.3).
        norm_scope (str): ``'batch'`` or ``'group'``.
        group_size (int, optional): Captions per group of ``'group'``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 norm_scope: str = 'batch',
                 group_size: Optional[int] = None) -> None:
        super().__init__()
        check_norm_scope(norm_scope, ('batch', 'group'), group_size)
        self.loss_weight = loss_weight
        self.norm_scope = norm_scope
        self.group_size = group_size

    def forward(self, logits: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """``logits [K, V]`` of the ``K`` masked positions of ``labels [B,
        N]`` (row-major order; ``labels != 0`` there) -> scalar loss."""
        selected = labels != 0
        rows = labels.shape[0]
        group_size = self.group_size if self.norm_scope == 'group' \
            else rows * get_world_size()
        groups = row_groups(rows, group_size, labels.device)
        counts = group_reduce(
            gather_constant(selected.sum(dim=1)).float(), groups.all,
            groups.count, 'sum')
        token_losses = F.cross_entropy(logits.float(), labels[selected],
                                       reduction='none')
        # each token divided by its group's masked count
        token_groups = groups.local[:, None].expand_as(labels)[selected]
        loss = (token_losses / counts[token_groups]).sum() * (
            get_world_size() / groups.count)
        return self.loss_weight * loss
