from collections import Counter

import pytest
import torch

from gadms.datasets import SynthPerson, samplers
from gadms.datasets.sample_seeds import SeededIndex
from gadms.registry import DATA_SAMPLERS

DATA = dict(num_identities=dict(train=12, val=1, test=1),
            images_per_identity=3, seed=0)


@pytest.fixture(scope='module')
def dataset():
    return SynthPerson(split='train', **DATA)  # 6 samples per identity


def _build(dataset, **kwargs):
    cfg = dict(type='IdentityBalancedSampler', dataset=dataset,
               batch_size=8, num_instances=2, seed=3)
    cfg.update(kwargs)
    return DATA_SAMPLERS.build(cfg)


def _pid(dataset, index):
    return dataset.get_data_info(index)['pid']


def test_batches_hold_p_identities_with_k_samples(dataset):
    sampler = _build(dataset)
    indices = list(sampler)
    assert len(indices) == len(sampler) and len(indices) % 8 == 0
    for start in range(0, len(indices), 8):
        counts = Counter(_pid(dataset, i) for i in indices[start:start + 8])
        assert len(counts) == 4 and set(counts.values()) == {2}
    # every sample of the split is used: 72 samples = 9 batches of 8
    assert set(indices) == set(range(len(dataset)))


def test_epochs_reshuffle_deterministically(dataset):
    sampler = _build(dataset)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    again = _build(dataset)
    again.set_epoch(1)
    assert first != second and second == list(again)


def test_two_ranks_share_the_batches_without_overlap(dataset, monkeypatch):
    single = list(_build(dataset))
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(samplers, 'get_dist_info', lambda r=rank: (r, 2))
        per_rank.append(list(_build(dataset)))
    assert len(per_rank[0]) == len(per_rank[1])
    batches = [tuple(single[i:i + 8]) for i in range(0, len(single), 8)]
    rank_batches = [[tuple(r[i:i + 8]) for i in range(0, len(r), 8)]
                    for r in per_rank]
    # 9 batches: rank 0 gets 0, 2, 4, 6, 8; rank 1 gets 1, 3, 5, 7 and
    # batch 0 again to even the ranks out
    assert rank_batches[0] == batches[0::2]
    assert rank_batches[1] == batches[1::2] + [batches[0]]


def test_bad_arguments(dataset):
    with pytest.raises(ValueError, match='multiple of num_instances'):
        _build(dataset, batch_size=9)
    with pytest.raises(ValueError, match='cannot fill batches'):
        _build(dataset, batch_size=40, num_instances=2)
    with pytest.raises(ValueError, match='always shuffles'):
        _build(dataset, shuffle=False)


TRAIN_PIPELINE = [
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandomCrop', crop_size=(96, 32), padding=8),
    dict(type='mmpretrain.RandomErasing', erase_prob=0.5, mode='rand'),
]


def _augmented(dataset, indices, num_workers: int) -> dict:
    """index -> augmented image, loaded as a training loader does."""
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, sampler=indices, num_workers=num_workers,
        collate_fn=lambda batch: batch, persistent_workers=num_workers > 0)
    return {s['sample_idx']: s['img'] for batch in loader for s in batch}


def test_augmentation_follows_the_sample_not_the_worker(tmp_path):
    """A sample's augmentation in an epoch is a function of (seed, epoch,
    index): the same in the main process and in two workers whatever the
    other samples of the batch; another epoch draws another one; the
    process's own generators are left where they were."""
    dataset = SynthPerson(split='train', pipeline=TRAIN_PIPELINE, **DATA)
    sampler = DATA_SAMPLERS.build(dict(type='ResumableSampler',
                                       dataset=dataset, shuffle=True, seed=5))
    epoch_1 = list(sampler)
    assert all(isinstance(i, SeededIndex) for i in epoch_1)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    dataset[epoch_1[0]]
    assert torch.equal(torch.rand(1), before)  # generators restored
    main = _augmented(dataset, epoch_1, num_workers=0)
    workers = _augmented(dataset, epoch_1[::-1], num_workers=2)
    assert main.keys() == workers.keys() == set(range(len(dataset)))
    assert all((main[i] == workers[i]).all() for i in main)
    # the last sample resumed alone (a mid-epoch resume) draws the same
    sampler.skip_samples = len(epoch_1) - 1
    last, = list(sampler)
    resumed = _augmented(dataset, [last], num_workers=2)
    assert (resumed[int(last)] == main[int(last)]).all()
    sampler.set_epoch(1)
    epoch_2 = _augmented(dataset, list(sampler), num_workers=0)
    assert sum((epoch_2[i] != main[i]).any() for i in main) > len(main) // 2
