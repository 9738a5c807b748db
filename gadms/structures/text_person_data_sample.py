from typing import Sequence, Union

import numpy as np
import torch
from mmengine.structures import BaseDataElement


class TextPersonDataSample(BaseDataElement):
    """One image of a person with its caption(s), as it flows through gadms.

    Ground truth set by the data pipeline:

    - ``pid`` (int): person identity, the label retrieval is matched on.
    - ``text_ids`` (LongTensor ``[N, L]``): token ids of the image's ``N``
      captions (``N = 1`` for a training sample, all captions of the image
      for a test sample), ``L`` = context length.

    Predictions set by the retriever in ``predict`` mode:

    - ``image_feat`` (Tensor ``[D]``): L2-normalised global image feature.
    - ``text_feats`` (Tensor ``[N, D]``): L2-normalised caption features.

    Meta information (``image_id``, ``img_path``, ``captions`` ...) is kept as
    metainfo.
    """

    def set_pid(self, pid: Union[int, np.integer, torch.Tensor]
                ) -> 'TextPersonDataSample':
        """Set the person identity."""
        self.set_field(int(pid), 'pid', dtype=int)
        return self

    def set_text_ids(self, text_ids: Union[np.ndarray, torch.Tensor,
                                           Sequence[Sequence[int]]]
                     ) -> 'TextPersonDataSample':
        """Set caption token ids, shape ``[N, L]`` or ``[L]``."""
        text_ids = torch.as_tensor(np.asarray(text_ids), dtype=torch.long)
        if text_ids.dim() == 1:
            text_ids = text_ids.unsqueeze(0)
        if text_ids.dim() != 2:
            raise ValueError('text_ids must have shape [N, L] or [L], got '
                             f'{tuple(text_ids.shape)}')
        self.set_field(text_ids, 'text_ids', dtype=torch.Tensor)
        return self

    @property
    def num_captions(self) -> int:
        """Number of captions carried by this sample."""
        return self.text_ids.shape[0]
