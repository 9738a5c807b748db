from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from gadms.registry import TRANSFORMS
from gadms.structures import TextPersonDataSample


@TRANSFORMS.register_module()
class PackTextPersonInputs(BaseTransform):
    """Pack an image and its caption ids for the data preprocessor.

    **Required Keys:** ``img`` (np.ndarray ``[H, W, 3]``, BGR as loaded
    by ``LoadPersonImage``: uint8, or float32 after
    ``NormalisedRandomErasing``), ``pid``, ``text_ids`` (``[N, L]``).

    **Packed:** ``inputs`` (Tensor ``[3, H, W]`` of the image's dtype) and
    ``data_samples`` (:class:`TextPersonDataSample` with ``pid`` and
    ``text_ids``, plus the ``meta_keys`` that are present as metainfo).

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when present.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('sample_idx', 'image_id',
                                             'img_path', 'captions',
                                             'ori_shape', 'img_shape',
                                             'benchmark', 'split',
                                             'token_annotation',
                                             'token_consensus')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'])
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'expected an [H, W, 3] image, got shape '
                             f'{img.shape} for {results.get("img_path")}')
        inputs = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        data_sample = TextPersonDataSample()
        data_sample.set_pid(results['pid'])
        data_sample.set_text_ids(results['text_ids'])
        data_sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=inputs, data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
