import os
import tempfile
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather, get_world_size


class TokenScoreBank:
    """Per-caption token scores that drive the masks of the next epoch.

    Stored as an fp16 ``[num_samples, length]`` array in a memory-mapped
    file, so 10M captions x 77 tokens take 1.5 GB of page cache, not Python
    objects; forked data-loader workers see every update through the
    shared mapping. :meth:`update` all-gathers (index, scores) pairs from
    every rank first, so each rank's bank holds every caption's latest
    scores (the released GA-DMS code updated only the local copy).

    Args:
        num_samples (int): Training captions (dataset length).
        length (int): Tokens per caption.
        init_value (float): Score before a caption was first scored (0.85).
        path (str, optional): Backing file; a private temporary file by
            default (removed when the bank is garbage-collected).
    """

    def __init__(self,
                 num_samples: int,
                 length: int = 77,
                 init_value: float = 0.85,
                 path: Optional[str] = None) -> None:
        # only the creating process removes a temporary file: forked
        # data-loader workers hold copies of this object too
        self._owner_pid = os.getpid() if path is None else None
        if path is None:
            handle, path = tempfile.mkstemp(prefix='gadms_score_bank_',
                                            suffix='.f16')
            os.close(handle)
        self.path = path
        self.init_value = init_value
        self._array = np.memmap(path, dtype=np.float16, mode='w+',
                                shape=(num_samples, length))
        self._array[:] = init_value

    def __len__(self) -> int:
        return self._array.shape[0]

    def __del__(self) -> None:
        if getattr(self, '_owner_pid', None) == os.getpid() and \
                os.path.exists(self.path):
            os.remove(self.path)

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """``[B]`` sample indices -> ``[B, length]`` fp32 scores (CPU)."""
        rows = self._array[indices.cpu().numpy()]
        return torch.from_numpy(rows.astype(np.float32))

    def update(self, indices: torch.Tensor, scores: torch.Tensor) -> None:
        """Write ``scores [B, length]`` at ``indices [B]`` on every rank."""
        indices = indices.detach().long()
        scores = scores.detach().to(torch.float16)
        if get_world_size() > 1:
            indices, scores = self._gather(indices, scores)
        self._array[indices.cpu().numpy()] = scores.cpu().numpy()

    @staticmethod
    def _gather(indices: torch.Tensor, scores: torch.Tensor):
        """All-gather batches that may differ in size between ranks."""
        sizes = all_gather(torch.tensor([len(indices)],
                                        device=indices.device))
        largest = int(max(size.item() for size in sizes))
        pad = largest - len(indices)
        padded_indices = torch.cat([indices, indices.new_full((pad, ), -1)])
        padded_scores = torch.cat(
            [scores, scores.new_zeros((pad, scores.shape[1]))])
        all_indices = torch.cat(all_gather(padded_indices))
        all_scores = torch.cat(all_gather(padded_scores))
        keep = all_indices >= 0
        return all_indices[keep], all_scores[keep]

    def to_tensor(self) -> torch.Tensor:
        """A copy of all scores, for checkpoints."""
        return torch.from_numpy(np.array(self._array))

    def load_tensor(self, scores: torch.Tensor) -> None:
        """Restore from :meth:`to_tensor`."""
        if tuple(scores.shape) != self._array.shape:
            raise ValueError(f'score bank of shape {tuple(scores.shape)} does '
                             f'not fit {self._array.shape}')
        self._array[:] = scores.to(torch.float16).numpy()
