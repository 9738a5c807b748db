import random

import torch
from common import EOT, SOT

from gadms.models.necks import DualMaskNeck
from gadms.models.utils import keyed_uniform
from gadms.models.utils.counter_random import keyed_hash


def _lowbias32(x: int) -> int:
    """Reference: C. Wellons' lowbias32 on Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_python_reference():
    rng = random.Random(0)
    keys = [[rng.getrandbits(63) for _ in range(3)] for _ in range(200)]
    expected = []
    for row in keys:
        state = 0
        for key in row:
            for half in (key & 0xFFFFFFFF, key >> 32):
                state = _lowbias32(state ^ half)
        expected.append(state)
    columns = torch.tensor(keys).t()
    assert keyed_hash(*columns).tolist() == expected


def test_uniforms_are_uniform_and_keyed():
    u = keyed_uniform(7, 3, torch.arange(4000)[:, None],
                      torch.arange(77)[None, :], 0)
    assert u.shape == (4000, 77) and 0 <= u.min() and u.max() < 1
    counts = torch.histc(u, bins=10, min=0, max=1)
    expected = u.numel() / 10
    # chi-square with 9 degrees of freedom, far below its 0.999 quantile
    assert ((counts - expected)**2 / expected).sum() < 27.9
    assert torch.equal(u[17], keyed_uniform(7, 3, 17, torch.arange(77), 0))
    assert not torch.equal(u, keyed_uniform(7, 4, torch.arange(4000)[:, None],
                                            torch.arange(77)[None, :], 0))


def test_keyed_masks_do_not_depend_on_the_batch_split():
    neck = DualMaskNeck(policy='score', seed=5)
    text_ids = torch.randint(1, 49000, (6, 20))
    text_ids[:, 0], text_ids[:, 19] = SOT, EOT
    scores = torch.rand(6, 20)
    keys = torch.tensor([11, 3, 8, 42, 7, 0])
    whole = neck(text_ids, scores, sample_keys=keys, step=9)
    halves = [neck(text_ids[s], scores[s], sample_keys=keys[s], step=9)
              for s in (slice(0, 2), slice(2, 6))]
    for field, value in zip(whole._fields, whole):
        torch.testing.assert_close(
            value, torch.cat([getattr(h, field) for h in halves]))
    later = neck(text_ids, scores, sample_keys=keys, step=10)
    assert not torch.equal(later.mtp_ids, whole.mtp_ids)
