import mmap
import os
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather, get_rank, get_world_size


class TokenScoreBank:
    """Per-caption token scores that drive the masks of the next epoch.

    Stored as an fp16 ``[copies, num_samples, length]`` array in a memory
    mapping, so 10M captions x 77 tokens take 1.5 GB per copy, not Python
    objects. By default the mapping is anonymous: no file exists, so
    nothing is left behind when the process dies (SIGKILL, OOM killer);
    with ``path`` it is a file created for this bank only (an existing file
    is never overwritten) and removed by :meth:`close`.

    Two modes:

    - synced (``group_size=None``, the default, what the paper describes):
      one copy; :meth:`update` all-gathers (index, scores) pairs from every
      rank first, so each rank reads every caption's latest scores.
    - per group (``group_size`` set): the released code's per-GPU banks.
      The global batch is cut into consecutive groups of ``group_size``
      captions (:func:`row_groups`), each group with its own copy: a
      caption reads the scores that *its group's* copy last stored for it
      (0.85 if that copy never saw it) and writes only there. Group ``k`` of
      every batch is the same copy, so with ``group_size`` = the per-GPU
      batch each rank keeps one copy, as the released code did, and one
      process with ``W x group_size`` rows keeps ``W``. Each rank holds
      ``per_rank_batch / group_size`` copies.

    Args:
        num_samples (int): Training captions (dataset length).
        length (int): Tokens per caption.
        init_value (float): Score before a caption was first scored (0.85).
        path (str, optional): Backing file, created here (refused if it
            exists) and removed by :meth:`close` or garbage collection;
            anonymous memory by default.
        group_size (int, optional): Per-group mode, see above.
        batch_size (int): Rows per rank and step (per-group mode only; a
            multiple of ``group_size``).
    """

    def __init__(self,
                 num_samples: int,
                 length: int = 77,
                 init_value: float = 0.85,
                 path: Optional[str] = None,
                 group_size: Optional[int] = None,
                 batch_size: Optional[int] = None) -> None:
        copies = self._copies_per_rank(group_size, batch_size)
        shape = (copies, num_samples, length)
        self.path = path
        self.init_value = init_value
        self.group_size = group_size
        if path is None:
            # MAP_SHARED | MAP_ANONYMOUS: freed with the last process using it
            self._buffer = mmap.mmap(-1, max(2 * int(np.prod(shape)), 1))
            self._array = np.frombuffer(
                self._buffer, np.float16, int(np.prod(shape))).reshape(shape)
        else:
            self._create_exclusively(path)
            self._array = np.memmap(path, dtype=np.float16, mode='w+',
                                    shape=shape)
        # only the creating process removes the file: forked data-loader
        # workers hold copies of this object too
        self._owner_pid = os.getpid()
        self._array[:] = init_value

    @staticmethod
    def _create_exclusively(path: str) -> None:
        """Create ``path`` empty; never take over an existing file."""
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o600))
        except FileExistsError as err:
            raise FileExistsError(
                f'score bank file {path} exists (another run, or a rank '
                'sharing the path?); remove it or choose another path'
            ) from err

    def close(self) -> None:
        """Remove the backing file (if any, and only in the process that
        created it)."""
        path = getattr(self, 'path', None)  # unset if __init__ failed
        if path is not None and getattr(
                self, '_owner_pid', None) == os.getpid() and \
                os.path.exists(path):
            os.remove(path)

    @staticmethod
    def _copies_per_rank(group_size: Optional[int],
                         batch_size: Optional[int]) -> int:
        if group_size is None:
            return 1
        if group_size < 1 or batch_size is None or batch_size < 1 or \
                batch_size % group_size:
            raise ValueError(
                'a per-group score bank needs a per-rank batch_size that is '
                f'a multiple of group_size, got batch_size={batch_size}, '
                f'group_size={group_size}')
        return batch_size // group_size

    def __len__(self) -> int:
        return self._array.shape[1]

    def __del__(self) -> None:
        self.close()

    def _copy_of_rows(self, rows: int) -> np.ndarray:
        """The copy each of ``rows`` consecutive batch rows uses."""
        if self.group_size is None:
            return np.zeros(rows, dtype=np.int64)
        if rows > self._array.shape[0] * self.group_size:
            raise ValueError(
                f'a batch of {rows} rows is larger than the per-group score '
                f'bank was built for ({self._array.shape[0]} groups of '
                f'{self.group_size})')
        return np.arange(rows) // self.group_size

    def read(self, indices: torch.Tensor) -> torch.Tensor:
        """``[B]`` sample indices (this rank's batch, in batch order) ->
        ``[B, length]`` fp32 scores (CPU)."""
        indices = indices.cpu().numpy()
        rows = self._array[self._copy_of_rows(len(indices)), indices]
        return torch.from_numpy(rows.astype(np.float32))

    def update(self, indices: torch.Tensor, scores: torch.Tensor) -> None:
        """Write ``scores [B, length]`` of this rank's batch at ``indices
        [B]``: on every rank (synced) or in the rows' group copies."""
        indices = indices.detach().long()
        scores = scores.detach().to(torch.float16)
        if self.group_size is None:
            if get_world_size() > 1:
                indices, scores = self._gather(indices, scores)
            self._array[0, indices.cpu().numpy()] = scores.cpu().numpy()
            return
        self._array[self._copy_of_rows(len(indices)),
                    indices.cpu().numpy()] = scores.cpu().numpy()

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
        """A copy of all scores, for checkpoints: ``[num_samples, length]``
        when synced, ``[groups, num_samples, length]`` per group, with every
        rank's copies gathered (a collective: call it on every rank)."""
        local = torch.from_numpy(np.array(self._array))
        if self.group_size is None:
            return local[0]
        if get_world_size() > 1:
            local = torch.cat(all_gather(local))
        return local

    def load_tensor(self, scores: torch.Tensor) -> None:
        """Restore from :meth:`to_tensor` (per group: this rank's copies)."""
        copies = self._array.shape[0]
        if self.group_size is None:
            expected, mine = self._array.shape[1:], scores
        else:
            expected = (copies * get_world_size(), *self._array.shape[1:])
            mine = scores[get_rank() * copies:(get_rank() + 1) * copies]
        if tuple(scores.shape) != tuple(expected):
            raise ValueError(
                f'score bank of shape {tuple(scores.shape)} does not fit '
                f'{tuple(expected)} (per-group banks need the same groups '
                'per rank and number of processes)')
        self._array[:] = mine.to(torch.float16).numpy().reshape(
            self._array.shape)
