import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
from common import spawn_workers

from gadms.models.losses import SDMLoss
from gadms.registry import MODELS


def _kl_rows(logits, target, eps=1e-8):
    """Mean over rows of sum_j p_ij (log p_ij - log(q_ij + eps))."""
    total = 0.0
    for row, q_row in zip(logits, target):
        z = sum(math.exp(v) for v in row)
        p = [math.exp(v) / z for v in row]
        total += sum(pj * (math.log(pj) - math.log(qj + eps))
                     for pj, qj in zip(p, q_row))
    return total / len(logits)


def test_three_by_three_by_hand():
    # images e1, e2, e1; captions e1, e2, e2; pids 0, 1, 0
    image = torch.tensor([[1., 0.], [0., 1.], [2., 0.]])
    text = torch.tensor([[3., 0.], [0., 1.], [0., 5.]])
    pids = torch.tensor([0, 1, 0])
    # cosines: rows are images, columns captions
    cosine = [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    tau = 0.5
    logits = [[c / tau for c in row] for row in cosine]
    logits_t = [list(col) for col in zip(*logits)]
    q = [[0.5, 0, 0.5], [0, 1, 0], [0.5, 0, 0.5]]
    expected = _kl_rows(logits, q) + _kl_rows(logits_t, q)
    # row 0 of i2t by hand: p = (e^2, 1, 1) / (e^2 + 2)
    p0 = [math.exp(2) / (math.exp(2) + 2), 1 / (math.exp(2) + 2)]
    row0 = p0[0] * (math.log(p0[0]) - math.log(0.5)) + p0[1] * (
        math.log(p0[1]) - math.log(1e-8)) + p0[1] * (
            math.log(p0[1]) - math.log(0.5))
    assert row0 == pytest.approx(_kl_rows([logits[0]], [q[0]]))
    loss = SDMLoss(temperature=tau)(image, text, pids)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    weighted = SDMLoss(temperature=tau, loss_weight=0.5)(image, text, pids)
    assert weighted.item() == pytest.approx(expected / 2, rel=1e-5)


def test_perfect_alignment_is_near_zero_and_registry_build():
    features = torch.eye(4) * 3
    loss = MODELS.build(dict(type='SDMLoss', temperature=0.02))(
        features, features, torch.arange(4))
    assert abs(loss.item()) < 1e-6
    with pytest.raises(ValueError, match='temperature'):
        SDMLoss(temperature=0)


def _shard_worker(rank, world_size, tmp_dir, image, text, pids):
    init_file = os.path.join(tmp_dir, 'init')
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=world_size)
    shard = slice(rank * 3, (rank + 1) * 3)
    local_image = image[shard].clone().requires_grad_(True)
    local_text = text[shard].clone().requires_grad_(True)
    loss = SDMLoss(temperature=0.1, gather=True)(local_image, local_text,
                                                 pids[shard])
    loss.backward()
    torch.save((rank, loss.item(), local_image.grad, local_text.grad),
               os.path.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_gloo_processes_give_the_full_batch_loss_and_gradient():
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(6, 8, generator=generator)
    text = torch.randn(6, 8, generator=generator)
    pids = torch.tensor([0, 1, 2, 0, 3, 1])
    full_image = image.clone().requires_grad_(True)
    full_text = text.clone().requires_grad_(True)
    full_loss = SDMLoss(temperature=0.1)(full_image, full_text, pids)
    full_loss.backward()

    with tempfile.TemporaryDirectory() as tmp:
        spawn_workers(_shard_worker, 2, (2, tmp, image, text, pids))
        results = [torch.load(os.path.join(tmp, f'rank{rank}.pt'))
                   for rank in range(2)]
    # each rank's loss covers its rows; their mean is the full-batch loss
    assert sum(r[1] for r in results) / 2 == pytest.approx(full_loss.item(),
                                                           rel=1e-6)
    assert results[0][1] != pytest.approx(results[1][1])
    for rank, _, image_grad, text_grad in results:
        shard = slice(rank * 3, (rank + 1) * 3)
        # the sum over ranks' losses reaches each row: after DDP's average
        # over 2 ranks this is the full-batch gradient
        torch.testing.assert_close(image_grad / 2, full_image.grad[shard])
        torch.testing.assert_close(text_grad / 2, full_text.grad[shard])
