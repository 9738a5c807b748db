from types import SimpleNamespace

import torch

from gadms.registry import HOOKS


def _runner(num_samples=5):
    model = SimpleNamespace(score_init=0.85, score_bank=None)
    loader = SimpleNamespace(dataset=list(range(num_samples)))
    return SimpleNamespace(model=model, train_dataloader=loader)


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
