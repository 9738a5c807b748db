import itertools
import math
from typing import Dict, Iterator, List, Optional

import numpy as np
from mmengine.dataset import DefaultSampler
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from gadms.registry import DATA_SAMPLERS
from .base import TextPersonDataset
from .sample_seeds import seeded_indices


class SkipMixin:
    """``skip_samples``: how many of this rank's indices the next epoch
    leaves out from its start (set by ``ResumableEpochBasedTrainLoop``
    when resuming mid-epoch; applies to one epoch). The indices are
    :class:`~gadms.datasets.sample_seeds.SeededIndex` values, so each
    sample's augmentation follows from ``(seed, epoch, index)``."""

    skip_samples = 0

    def _skip_trained(self, indices: Iterator[int]) -> Iterator[int]:
        skip, self.skip_samples = self.skip_samples, 0
        return seeded_indices(itertools.islice(indices, skip, None),
                              self.seed, self.epoch)


@DATA_SAMPLERS.register_module()
class ResumableSampler(SkipMixin, DefaultSampler):
    """MMEngine's ``DefaultSampler`` (same order, padding and epoch
    seeding) that can start an epoch part-way, for exact mid-epoch resume,
    and seeds each sample's augmentation from ``(seed, epoch, index)``.

    Use in configs::

        sampler=dict(type='ResumableSampler', shuffle=True)
    """

    def __iter__(self) -> Iterator[int]:
        return self._skip_trained(super().__iter__())


@DATA_SAMPLERS.register_module()
class IdentityBalancedSampler(SkipMixin, Sampler):
    """Batches of ``P`` distinct identities with ``K`` samples each.

    Each epoch, every identity's samples are shuffled and cut into groups of
    ``K`` (an identity with fewer than ``K`` samples, or a last short group,
    is filled by drawing its samples again); batches take ``P =
    batch_size / K`` groups of different identities at random until fewer
    than ``P`` identities have groups left. The batches are shared out
    round-robin over the ranks (the last round is completed by repeating
    batches from the start), so every rank yields the same number of
    batches and no batch is split between ranks. Set the data loader's
    ``batch_size`` to the same value.

    Args:
        dataset (TextPersonDataset): A dataset with ``sample_pids()``.
        batch_size (int): ``P * K``, samples per batch on one rank.
        num_instances (int): ``K``, samples per identity in a batch.
        seed (int, optional): Shared seed; synchronised across ranks by
            default.
        shuffle (bool): Must be True (accepted so that a config can switch
            ``type`` from ``DefaultSampler``).

    Use in configs::

        train_dataloader = dict(
            batch_size=64,
            sampler=dict(type='IdentityBalancedSampler', batch_size=64,
                         num_instances=4))
    """

    def __init__(self,
                 dataset: TextPersonDataset,
                 batch_size: int,
                 num_instances: int = 4,
                 seed: Optional[int] = None,
                 shuffle: bool = True) -> None:
        if not shuffle:
            raise ValueError('IdentityBalancedSampler always shuffles; use '
                             'DefaultSampler for a fixed order')
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(f'batch_size ({batch_size}) must be a multiple '
                             f'of num_instances ({num_instances})')
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.ids_per_batch = batch_size // num_instances
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        self.samples_by_pid = self._group_by_pid(dataset)
        if len(self.samples_by_pid) < self.ids_per_batch:
            raise ValueError(
                f'{len(self.samples_by_pid)} identities cannot fill batches '
                f'of {self.ids_per_batch} identities')
        self.batches_per_rank = math.ceil(
            len(self._epoch_batches()) / self.world_size)

    @staticmethod
    def _group_by_pid(dataset: TextPersonDataset) -> Dict[int, List[int]]:
        groups: Dict[int, List[int]] = {}
        for index, pid in enumerate(dataset.sample_pids().tolist()):
            groups.setdefault(pid, []).append(index)
        return groups

    def _epoch_batches(self) -> List[List[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.num_instances
        groups_by_pid = {}
        for pid, indices in self.samples_by_pid.items():
            order = list(rng.permutation(indices))
            short = -len(order) % k
            order += list(rng.choice(indices, size=short, replace=True))
            groups_by_pid[pid] = [order[i:i + k]
                                  for i in range(0, len(order), k)]
        batches = []
        while len(groups_by_pid) >= self.ids_per_batch:
            pids = rng.choice(sorted(groups_by_pid), self.ids_per_batch,
                              replace=False)
            batch = []
            for pid in pids:
                batch.extend(int(i) for i in groups_by_pid[pid].pop())
                if not groups_by_pid[pid]:
                    del groups_by_pid[pid]
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[int]:
        batches = self._epoch_batches()
        total = self.batches_per_rank * self.world_size
        batches = (batches * math.ceil(total / len(batches)))[:total]
        yield from self._skip_trained(
            itertools.chain.from_iterable(batches[self.rank::self.world_size]))

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (called by ``DistSamplerSeedHook``)."""
        self.epoch = epoch
