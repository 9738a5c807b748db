import os
import signal
import subprocess
import sys
import tempfile

import pytest
import torch
import torch.distributed as dist
from common import spawn_workers
from torch.utils.data import DataLoader, Dataset

from gadms.models.score_bank import TokenScoreBank


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


# a child that fills a default bank, then is killed like the OOM killer
KILLED_WITH_A_BANK = '''
import os, signal, torch
from gadms.models.score_bank import TokenScoreBank
bank = TokenScoreBank(1000, length=77)
bank.update(torch.arange(4), torch.rand(4, 77))
os.kill(os.getpid(), signal.SIGKILL)
'''


def test_default_bank_leaves_nothing_when_killed(tmp_path):
    scratch = tmp_path / 'tmp'
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch))
    child = subprocess.run([sys.executable, '-c', KILLED_WITH_A_BANK],
                           env=env, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert list(scratch.iterdir()) == []


def test_file_bank_is_exclusive_and_removed(tmp_path):
    path = tmp_path / 'bank.f16'
    bank = TokenScoreBank(6, length=2, init_value=0.5, path=str(path))
    assert path.stat().st_size == 6 * 2 * 2  # fp16
    bank.update(torch.tensor([1]), torch.tensor([[0.25, 0.75]]))
    with pytest.raises(FileExistsError, match=f'score bank file {path} '
                       'exists'):
        TokenScoreBank(6, length=2, path=str(path))
    # the refused bank neither overwrote nor removed the first one's file
    assert bank.read(torch.tensor([1])).tolist() == [[0.25, 0.75]]
    assert path.exists()
    bank.close()
    assert not path.exists()


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
        spawn_workers(_rank_worker, 2, (2, tmp))
        banks = [torch.load(os.path.join(tmp, f'rank{r}.pt'))
                 for r in range(2)]
    expected = torch.tensor([0.1, 0.5, 0.1, 0.5, 0.1, 0.85])[:, None].expand(
        -1, 2)
    for bank in banks:
        torch.testing.assert_close(bank, expected, atol=1e-3, rtol=0)


# two epochs of a global batch of 4 = 2 groups of 2 captions (one group per
# rank on 2 processes); captions 0-7
EPOCHS = [
    [[0, 1, 2, 3], [4, 5, 6, 7]],
    [[5, 2, 3, 0], [7, 1, 6, 4]],
]


def _per_group_epochs(bank, rows: slice, groups: list) -> list:
    """Run the two epochs on this process's ``rows`` of each global batch
    (``groups``: their group ids): read, then write ``0.1 + 0.4 * epoch +
    0.2 * group``. Returns what each step read."""
    reads = []
    for epoch, batches in enumerate(EPOCHS):
        for batch in batches:
            indices = torch.tensor(batch[rows])
            reads.append(bank.read(indices)[:, 0])
            written = 0.1 + 0.4 * epoch + 0.2 * torch.tensor(groups)
            bank.update(indices, written[:, None].expand(-1, 2))
    return reads


def _bank_contents(bank, copies: int) -> torch.Tensor:
    """``[copies, 8]``: what each group copy would serve for captions 0-7."""
    table = torch.empty(copies, 8)
    for copy in range(copies):
        for sample in range(8):
            rows = torch.full((2 * (copy + 1), ), sample)
            table[copy, sample] = bank.read(rows)[2 * copy, 0]
    return table


def _per_group_worker(rank, tmp_dir):
    dist.init_process_group(
        'gloo', init_method=f'file://{os.path.join(tmp_dir, "init")}',
        rank=rank, world_size=2)
    bank = TokenScoreBank(8, length=2, group_size=2, batch_size=2)
    reads = _per_group_epochs(bank, slice(2 * rank, 2 * rank + 2),
                              [rank, rank])
    torch.save((reads, _bank_contents(bank, 1), bank.to_tensor()),
               os.path.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_per_group_bank_reads_what_its_rank_wrote_after_two_epochs():
    with tempfile.TemporaryDirectory() as tmp:
        spawn_workers(_per_group_worker, 2, (tmp, ))
        ranks = [torch.load(os.path.join(tmp, f'rank{r}.pt'))
                 for r in range(2)]
    init = 0.85
    # epoch 2 reads: rank 0 wrote 0, 1, 4, 5 with 0.1 and rank 1 wrote 2, 3,
    # 6, 7 with 0.3 in epoch 1; each sees only its own writes
    expected_reads = [
        [[init, init], [init, init]],  # epoch 1, step 1: rank 0, rank 1
        [[init, init], [init, init]],
        [[0.1, init], [0.3, init]],  # epoch 2: rank 0 reads 5, 2; rank 1 3, 0
        [[init, 0.1], [0.3, init]],  # rank 0 reads 7, 1; rank 1 6, 4
    ]
    # after epoch 2 (0.5 by rank 0, 0.7 by rank 1)
    expected_banks = [
        [0.1, 0.5, 0.5, init, 0.1, 0.5, init, 0.5],
        [0.7, init, 0.3, 0.7, 0.7, init, 0.7, 0.3],
    ]
    for rank, (reads, table, _) in enumerate(ranks):
        torch.testing.assert_close(
            torch.stack(reads), torch.tensor(expected_reads)[:, rank],
            atol=1e-3, rtol=0)
        torch.testing.assert_close(table[0], torch.tensor(
            expected_banks[rank]), atol=1e-3, rtol=0)
    # the checkpoint holds both ranks' copies
    for _, _, saved in ranks:
        torch.testing.assert_close(saved[:, :, 0], torch.tensor(
            expected_banks).half(), atol=1e-3, rtol=0)

    # one process with both groups in its batch keeps the same two copies
    single = TokenScoreBank(8, length=2, group_size=2, batch_size=4)
    reads = _per_group_epochs(single, slice(0, 4), [0, 0, 1, 1])
    torch.testing.assert_close(
        torch.stack(reads), torch.tensor(expected_reads).flatten(1),
        atol=1e-3, rtol=0)
    torch.testing.assert_close(_bank_contents(single, 2),
                               torch.tensor(expected_banks), atol=1e-3,
                               rtol=0)
    # synced: every caption reads its latest score, whoever wrote it
    synced = TokenScoreBank(8, length=2)
    reads = _per_group_epochs(synced, slice(0, 4), [0, 0, 1, 1])
    torch.testing.assert_close(reads[2], torch.tensor([0.1, 0.3, 0.3, 0.1]),
                               atol=1e-3, rtol=0)
