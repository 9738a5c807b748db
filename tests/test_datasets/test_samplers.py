from collections import Counter

import pytest

from gadms.datasets import SynthPerson, samplers
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
