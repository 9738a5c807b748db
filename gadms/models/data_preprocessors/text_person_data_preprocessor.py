from typing import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from gadms.datasets.transforms.clip_norm import CLIP_MEAN, CLIP_STD
from gadms.registry import MODELS


@MODELS.register_module()
class TextPersonDataPreprocessor(BaseDataPreprocessor):
    """Batch images and caption ids and move them to the model's device.

    Input: ``inputs`` (list of uint8, or float32 on the 0-255 scale, ``[3,
    H, W]`` tensors, or a stacked
    ``[B, 3, H, W]`` tensor) and ``data_samples`` (each with ``text_ids``
    ``[N_i, L]``).

    Output: ``inputs=dict(images=float [B, 3, H, W] normalised,
    text_ids=long [sum N_i, L])`` with the captions in sample order, and the
    unchanged ``data_samples``.

    Args:
        mean (Sequence[float]): Per-channel mean (RGB, 0-255). Defaults to
            CLIP's.
        std (Sequence[float]): Per-channel std (RGB, 0-255). Defaults to
            CLIP's.
        bgr_to_rgb (bool): Swap channels first; the loaders produce BGR.
        non_blocking (bool): Asynchronous host-to-device copies.
    """

    def __init__(self,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 bgr_to_rgb: bool = True,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        self.bgr_to_rgb = bgr_to_rgb
        self.register_buffer('mean',
                             torch.tensor(mean).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        images = data['inputs']
        if not isinstance(images, torch.Tensor):
            shapes = {tuple(img.shape) for img in images}
            if len(shapes) != 1:
                raise ValueError('all images of a batch must share one '
                                 f'shape; resize them first, got {shapes}')
            images = torch.stack(images)
        data_samples = data['data_samples']
        text_ids = torch.cat([sample.text_ids for sample in data_samples])
        images, text_ids = self.cast_data((images, text_ids))
        return dict(
            inputs=dict(images=self.normalise_images(images),
                        text_ids=text_ids),
            data_samples=data_samples)

    def normalise_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or float ``[B, 3, H, W]`` (loader channel order, 0-255
        scale) on the model's device -> normalised float ``[B, 3, H, W]``."""
        if self.bgr_to_rgb:
            images = images.flip(1)
        return (images.float() - self.mean) / self.std
