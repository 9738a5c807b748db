from typing import Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from torchvision.transforms import RandomErasing

from gadms.registry import TRANSFORMS
from .clip_norm import CLIP_MEAN, CLIP_STD

# torchvision's default fill of the IRRA / GA-DMS pipelines: CLIP's mean
# written *after* Normalize, i.e. in normalised units
NORMALISED_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


@TRANSFORMS.register_module()
class NormalisedRandomErasing(BaseTransform):
    """Random erasing as the released GA-DMS / IRRA code does it.

    The released pipeline erases with ``torchvision.transforms.
    RandomErasing(scale, value)`` *after* ``Normalize``, so the erased box
    holds ``value`` in normalised units (by default CLIP's mean, i.e. the
    pixel colour ``mean + value * std``, not the mean colour). gadms
    normalises later, in the data preprocessor, so this transform writes
    that pixel colour exactly (float32 output) and draws the box with
    torchvision's own sampler (``RandomErasing.get_params``, the torch RNG,
    up to 10 tries, no erasing when none fits).

    **Required Keys:** ``img`` (``[H, W, 3]``, ``channel_order``).
    **Modified Keys:** ``img`` (float32, 0-255 scale).

    Args:
        erase_prob (float): Probability of erasing (0.5).
        scale (tuple): Range of the erased area fraction ((0.02, 0.4)).
        ratio (tuple): Range of the box aspect ratio ((0.3, 3.3)).
        value (Sequence[float]): RGB fill in normalised units.
        mean, std (Sequence[float]): RGB normalisation of the data
            preprocessor (0-255 scale); CLIP's by default.
        channel_order (str): ``'bgr'`` (as loaded) or ``'rgb'``.
    """

    def __init__(self,
                 erase_prob: float = 0.5,
                 scale: Tuple[float, float] = (0.02, 0.4),
                 ratio: Tuple[float, float] = (0.3, 3.3),
                 value: Sequence[float] = NORMALISED_CLIP_MEAN,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD,
                 channel_order: str = 'bgr') -> None:
        if not 0 <= erase_prob <= 1:
            raise ValueError(f'erase_prob must be in [0, 1], got {erase_prob}')
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError("channel_order must be 'bgr' or 'rgb', got "
                             f'{channel_order!r}')
        self.erase_prob = erase_prob
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        fill = np.asarray(value, np.float64) * np.asarray(std) + \
            np.asarray(mean)
        self.fill = (fill[::-1] if channel_order == 'bgr' else fill).astype(
            np.float32)

    def transform(self, results: dict) -> dict:
        img = results['img'].astype(np.float32)
        # the draw order of torchvision's RandomErasing.forward
        if torch.rand(1) < self.erase_prob:
            height, width = img.shape[:2]
            top, left, box_h, box_w, _ = RandomErasing.get_params(
                torch.empty(()).expand(3, height, width), self.scale,
                self.ratio, value=[0.0])
            if (box_h, box_w) != (height, width):  # else nothing fitted
                img[top:top + box_h, left:left + box_w] = self.fill
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(erase_prob={self.erase_prob}, '
                f'scale={self.scale}, ratio={self.ratio}, '
                f'fill={self.fill.tolist()})')
