import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, Dataset

from gadms.models.utils import TokenScoreBank


def test_init_read_update_round_trip():
    bank = TokenScoreBank(10, length=4, init_value=0.85)
    assert len(bank) == 10
    torch.testing.assert_close(bank.read(torch.tensor([0, 9])),
                               torch.full((2, 4), 0.85, dtype=torch.float32),
                               atol=1e-3, rtol=0)
    bank.update(torch.tensor([3, 7]), torch.tensor([[0.1] * 4, [0.9] * 4]))
    values = bank.read(torch.tensor([3, 7, 4]))
    torch.testing.assert_close(values[:, 0], torch.tensor([0.1, 0.9, 0.85]),
                               atol=1e-3, rtol=0)
    copy = TokenScoreBank(10, length=4)
    copy.load_tensor(bank.to_tensor())
    assert torch.equal(copy.read(torch.arange(10)), bank.read(
        torch.arange(10)))
    path = bank.path
    del bank
    assert not os.path.exists(path)


class _BankReader(Dataset):

    def __init__(self, bank):
        self.bank = bank

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return self.bank.read(torch.tensor([index]))[0, 0]


def test_forked_workers_see_updates_in_the_next_epoch():
    bank = TokenScoreBank(4, length=3, init_value=0.85)
    loader = DataLoader(_BankReader(bank), batch_size=4, num_workers=2,
                        persistent_workers=True,
                        multiprocessing_context='fork')
    first = next(iter(loader))
    bank.update(torch.arange(4), torch.full((4, 3), 0.25))
    second = next(iter(loader))
    torch.testing.assert_close(first, torch.full((4, ), 0.85), atol=1e-3,
                               rtol=0)
    torch.testing.assert_close(second, torch.full((4, ), 0.25), atol=1e-3,
                               rtol=0)


def _rank_worker(rank, world_size, tmp_dir):
    dist.init_process_group(
        'gloo', init_method=f'file://{os.path.join(tmp_dir, "init")}',
        rank=rank, world_size=world_size)
    bank = TokenScoreBank(6, length=2, init_value=0.85)
    # rank 0 writes rows 0, 2, 4 with 0.1; rank 1 writes 1 (and one fewer
    # row) with 0.5
    indices = torch.tensor([0, 2, 4]) if rank == 0 else torch.tensor([1, 3])
    bank.update(indices, torch.full((len(indices), 2), 0.1 + 0.4 * rank))
    torch.save(bank.read(torch.arange(6)),
               os.path.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_gloo_processes_see_every_update():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank_worker, nprocs=2, join=True, args=(2, tmp))
        banks = [torch.load(os.path.join(tmp, f'rank{r}.pt'))
                 for r in range(2)]
    expected = torch.tensor([0.1, 0.5, 0.1, 0.5, 0.1, 0.85])[:, None].expand(
        -1, 2)
    for bank in banks:
        torch.testing.assert_close(bank, expected, atol=1e-3, rtol=0)
