import warnings
from typing import Dict

import torch
from mmengine.model import BaseModule

from gadms.registry import MODELS

with warnings.catch_warnings():
    # mmcv-lite lacks an op of mmpretrain's detection-style models, which
    # gadms does not use; importing the package registers its losses
    warnings.filterwarnings('ignore', message='Fail to import')
    import mmpretrain.models  # noqa: F401


@MODELS.register_module()
class IdentityHead(BaseModule):
    """Identity classification shared by image and text features (ID loss).

    ``L_id = loss([W f; W h], [pid; pid])`` with one linear classifier
    ``W`` for image features ``f`` and text features ``h`` (IRRA): with the
    default cross-entropy, ``(CE(W f, pid) + CE(W h, pid)) / 2`` times its
    ``loss_weight``. Weights start from N(0, 0.001), bias from 0.

    Args:
        num_classes (int): Training identities (pids ``0..num_classes-1``).
        in_channels (int): Feature size.
        loss (dict): Config of the classification loss (mmpretrain's
            ``CrossEntropyLoss`` with ``loss_weight`` 1 by default).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 512,
                 loss: dict = dict(type='mmpretrain.CrossEntropyLoss',
                                   loss_weight=1.0),
                 init_cfg: dict = dict(
                     type='Normal', layer='Linear', std=0.001, bias=0)):
        super().__init__(init_cfg=init_cfg)
        self.classifier = torch.nn.Linear(in_channels, num_classes)
        self.loss_module = MODELS.build(loss)

    def loss(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
             pids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``[B, C], [B, C], [B] -> {'loss_id': scalar}``."""
        num_classes = self.classifier.out_features
        if pids.min() < 0 or pids.max() >= num_classes:
            raise ValueError(f'pids must lie in [0, {num_classes}); got '
                             f'{pids.min().item()}..{pids.max().item()}')
        logits = self.classifier(torch.cat([image_feats, text_feats]).float())
        return dict(loss_id=self.loss_module(logits, pids.repeat(2)))
