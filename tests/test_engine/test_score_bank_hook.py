import os.path as osp
from types import SimpleNamespace

import pytest
import torch

from gadms.registry import HOOKS


def _runner(num_samples=5, batch_size=4, work_dir=None):
    model = SimpleNamespace(score_init=0.85, score_bank=None)
    loader = SimpleNamespace(dataset=list(range(num_samples)),
                             batch_size=batch_size)
    return SimpleNamespace(model=model, train_dataloader=loader,
                           work_dir=work_dir)


def test_bank_is_attached_saved_and_restored_on_resume():
    hook = HOOKS.build(dict(type='ScoreBankHook', context_length=3))
    runner = _runner()
    hook.before_train(runner)
    bank = runner.model.score_bank
    assert len(bank) == 5
    bank.update(torch.tensor([1, 4]), torch.full((2, 3), 0.5))
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    saved = checkpoint['score_bank']
    assert saved.shape == (5, 3)

    # resume: the checkpoint is loaded before the bank exists
    resumed_hook = HOOKS.build(dict(type='ScoreBankHook', context_length=3))
    resumed = _runner()
    resumed_hook.after_load_checkpoint(resumed, {'score_bank': saved})
    resumed_hook.before_train(resumed)
    assert torch.equal(resumed.model.score_bank.to_tensor(), saved)
    # a checkpoint without a bank (e.g. the baseline's) changes nothing
    resumed_hook.after_load_checkpoint(resumed, {})
    assert torch.equal(resumed.model.score_bank.to_tensor(), saved)


def test_per_group_bank_round_trips_every_group_copy():
    cfg = dict(type='ScoreBankHook', context_length=3, mode='per_group',
               group_size=2)
    hook = HOOKS.build(cfg)
    runner = _runner(batch_size=4)
    hook.before_train(runner)
    bank = runner.model.score_bank
    # rows 0-1 are group 0, rows 2-3 group 1: sample 4 is in both groups
    bank.update(torch.tensor([1, 4, 4, 0]),
                torch.tensor([0.1, 0.2, 0.3, 0.4])[:, None].expand(4, 3))
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    saved = checkpoint['score_bank']
    assert saved.shape == (2, 5, 3)
    resumed_hook = HOOKS.build(cfg)
    resumed = _runner(batch_size=4)
    resumed_hook.after_load_checkpoint(resumed, {'score_bank': saved})
    resumed_hook.before_train(resumed)
    # sample 4 read from group 0 then group 1, sample 1 only in group 0
    got = resumed.model.score_bank.read(torch.tensor([4, 1, 4, 1]))[:, 0]
    torch.testing.assert_close(got, torch.tensor([0.2, 0.1, 0.3, 0.85]),
                               atol=1e-3, rtol=0)


def test_per_group_bank_needs_a_dividing_batch():
    hook = HOOKS.build(dict(type='ScoreBankHook', mode='per_group',
                            group_size=3))
    with pytest.raises(ValueError, match='batch_size=4, group_size=3'):
        hook.before_train(_runner(batch_size=4))


def test_work_dir_storage_is_cleaned_at_start_and_end(tmp_path):
    hook = HOOKS.build(dict(type='ScoreBankHook', context_length=3,
                            storage='work_dir'))
    runner = _runner(work_dir=str(tmp_path))
    stale = tmp_path / 'score_bank' / 'rank0.f16'
    stale.parent.mkdir()
    stale.write_bytes(b'left by a killed run')
    hook.before_train(runner)
    assert runner.model.score_bank.path == str(stale)
    assert stale.stat().st_size == 5 * 3 * 2  # the new bank's, not the old
    hook.after_run(runner)
    assert not stale.exists()


def test_explicit_path_is_per_rank_and_never_overwritten(tmp_path):
    prefix = str(tmp_path / 'bank')
    hook = HOOKS.build(dict(type='ScoreBankHook', context_length=3,
                            path=prefix))
    runner = _runner()
    hook.before_train(runner)
    assert runner.model.score_bank.path == prefix + '.rank0'
    with pytest.raises(FileExistsError, match=f'{prefix}.rank0 exists'):
        HOOKS.build(dict(type='ScoreBankHook', path=prefix)).before_train(
            _runner())
    hook.after_run(runner)
    assert not osp.exists(prefix + '.rank0')
    with pytest.raises(ValueError, match="storage must be 'memory' or "):
        HOOKS.build(dict(type='ScoreBankHook', storage='tmp'))
