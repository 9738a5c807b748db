import logging
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel

from gadms.registry import MODELS
from gadms.structures import TextPersonDataSample

SampleList = List[TextPersonDataSample]


@MODELS.register_module()
class CLIPSDM(BaseModel):
    """CLIP fine-tuned with the SDM loss: the plain text-to-person baseline.

    Training aligns the global image feature (token 0) with the sentence
    feature (EOT token) of its caption through SDM, optionally plus the ID
    loss. Retrieval ranks gallery images by the cosine similarity of those
    two features.

    Args:
        backbone (dict): CLIP backbone config (``OpenCLIPBackbone``).
        loss (dict): Alignment loss config. Defaults to ``SDMLoss``.
        id_head (dict, optional): ``IdentityHead`` config for the ID loss;
            ``in_channels`` defaults to the backbone's embedding size.
        nonfinite_loss (str): What a NaN or infinite loss does: ``'raise'``
            (default) stops training with an error naming the iteration
            and every loss term; ``'skip'`` logs them and backpropagates a
            zero loss instead, so this rank adds no gradient to the step
            (optimizer momentum still applies).
        data_preprocessor (dict, optional): Defaults to
            ``TextPersonDataPreprocessor``.
        init_cfg (dict, optional): MMEngine initialisation config.

    Modes of :meth:`forward`:

    - ``'loss'``: dict of losses (one caption per image);
    - ``'predict'``: the data samples with L2-normalised ``image_feat``
      ``[D]`` and ``text_feats`` ``[N_i, D]``;
    - ``'tensor'``: the raw ``(image_feats [B, D], text_feats [T, D])``.
    """

    def __init__(self,
                 backbone: dict,
                 loss: dict = dict(type='SDMLoss'),
                 id_head: Optional[dict] = None,
                 nonfinite_loss: str = 'raise',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if nonfinite_loss not in ('raise', 'skip'):
            raise ValueError("nonfinite_loss must be 'raise' or 'skip', got "
                             f'{nonfinite_loss!r}')
        data_preprocessor = MODELS.build(
            data_preprocessor or dict(type='TextPersonDataPreprocessor'))
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.nonfinite_loss = nonfinite_loss
        self.backbone = MODELS.build(backbone)
        self.loss_align = MODELS.build(loss)
        self.id_head = None
        if id_head is not None:
            id_head = dict(id_head)
            id_head.setdefault('in_channels', self.backbone.embed_dim)
            self.id_head = MODELS.build(id_head)

    def parse_losses(self, losses: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """MMEngine's sum of the losses, with the non-finite check."""
        loss, log_vars = super().parse_losses(losses)
        if torch.isfinite(loss):
            return loss, log_vars
        iteration = MessageHub.get_current_instance().get_info('iter', 0) + 1
        terms = ', '.join(f'{name}={float(value):.4g}'
                          for name, value in log_vars.items())
        message = f'non-finite loss at iteration {iteration}: {terms}'
        if self.nonfinite_loss == 'raise':
            raise FloatingPointError(
                f'{message} (set model.nonfinite_loss="skip" to skip such '
                'steps)')
        print_log(f'{message}; step skipped', logger='current',
                  level=logging.WARNING)
        # zero gradients for every parameter keep DDP's reduction complete
        zero = sum(p.sum() * 0.0 for p in self.parameters()
                   if p.requires_grad)
        return zero, log_vars

    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """Global image features (not normalised): ``[B, 3, H, W]``
        normalised images -> ``[B, D]``. What ``predict`` ranks with, and
        the inferencer's gallery features."""
        return self.backbone.pool_image(self.backbone.encode_image(images))

    def extract_text_feat(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Sentence features (not normalised): ``[T, L]`` ids ->
        ``[T, D]``. What ``predict`` ranks with, and the inferencer's query
        features."""
        return self.backbone.encode_sentences(text_ids)

    def extract_feat(self, inputs: Dict[str, torch.Tensor]
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Global features: ``images [B, 3, H, W], text_ids [T, L]`` ->
        ``image_feats [B, D], text_feats [T, D]`` (not normalised)."""
        return (self.extract_image_feat(inputs['images']),
                self.extract_text_feat(inputs['text_ids']))

    def forward(self,
                inputs: Dict[str, torch.Tensor],
                data_samples: Optional[SampleList] = None,
                mode: str = 'tensor'
                ) -> Union[Dict[str, torch.Tensor], SampleList, Tuple]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise RuntimeError(f'Invalid mode "{mode}": expected "loss", '
                           '"predict" or "tensor"')

    @staticmethod
    def _pids(data_samples: SampleList,
              device: torch.device) -> torch.Tensor:
        return torch.tensor([sample.pid for sample in data_samples],
                            device=device)

    @staticmethod
    def _check_one_caption_per_image(inputs: Dict[str, torch.Tensor]
                                     ) -> None:
        num_images = inputs['images'].shape[0]
        if inputs['text_ids'].shape[0] != num_images:
            raise ValueError(
                f'training needs one caption per image, got '
                f'{inputs["text_ids"].shape[0]} captions for {num_images} '
                'images')

    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: SampleList) -> Dict[str, torch.Tensor]:
        """Losses of a batch where every image has exactly one caption."""
        self._check_one_caption_per_image(inputs)
        pids = self._pids(data_samples, inputs['images'].device)
        image_feats, text_feats = self.extract_feat(inputs)
        losses = dict(loss_sdm=self.loss_align(image_feats, text_feats, pids))
        if self.id_head is not None:
            losses.update(self.id_head.loss(image_feats, text_feats, pids))
        return losses

    def predict(self, inputs: Dict[str, torch.Tensor],
                data_samples: SampleList) -> SampleList:
        """Attach normalised features to each sample (CPU tensors)."""
        image_feats, text_feats = self.extract_feat(inputs)
        image_feats = F.normalize(image_feats.float(), dim=-1).cpu()
        text_feats = F.normalize(text_feats.float(), dim=-1).cpu()
        counts = [sample.num_captions for sample in data_samples]
        for sample, image_feat, sample_text_feats in zip(
                data_samples, image_feats, text_feats.split(counts)):
            sample.set_field(image_feat, 'image_feat')
            sample.set_field(sample_text_feats, 'text_feats')
        return data_samples
