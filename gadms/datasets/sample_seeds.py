"""Augmentation drawn from the sample, not from the process that loads it.

Data loader workers draw their augmentations from their own random
generators, seeded once when they start (once per training with persistent
workers). A resumed training starts new workers, whose generators are at
another point of their stream than the uninterrupted run's were, so its
augmentations differ even though the sampler order is restored.

gadms's training samplers therefore yield :class:`SeededIndex` values: the
sample index together with the sampler's seed and epoch. The dataset
(:meth:`gadms.datasets.base.TextPersonDataset.__getitem__`) loads the sample
with Python's, numpy's and torch's global generators seeded from
``(seed, epoch, index)`` and restores them afterwards. The augmentation of a
sample in an epoch is then the same whichever process, worker or rank loads
it, and whether or not the run was resumed.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch


class SeededIndex(int):
    """A sample index that carries the seed of its augmentation.

    Behaves as the plain ``int`` index everywhere; survives pickling to
    data loader workers.

    Args:
        index (int): The sample index.
        seed (int): The sampler's shared seed.
        epoch (int): The epoch the index is drawn for.
    """

    def __new__(cls, index: int, seed: int, epoch: int) -> 'SeededIndex':
        value = super().__new__(cls, index)
        value.seed, value.epoch = int(seed), int(epoch)
        return value

    def __reduce__(self):
        return SeededIndex, (int(self), self.seed, self.epoch)

    def sample_seed(self) -> int:
        """A 32-bit seed drawn from ``(seed, epoch, index)``."""
        return int(np.random.SeedSequence(
            [self.seed, self.epoch, int(self)]).generate_state(1)[0])


def seeded_indices(indices: Iterator[int], seed: int,
                   epoch: int) -> Iterator[SeededIndex]:
    """``indices`` as :class:`SeededIndex` values of one epoch."""
    for index in indices:
        yield SeededIndex(index, seed, epoch)


@contextlib.contextmanager
def seeded_global_generators(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's (CPU) global generators with
    ``seed`` for the block, then restore their states, so that code around
    the block draws the numbers it would have drawn without it."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)  # CUDA's stay untouched
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
