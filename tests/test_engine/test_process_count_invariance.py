"""One training step on 1 process with batch B equals 2 gloo processes with
B/2 each: the same loss and the same parameter update."""
import os.path as osp

import pytest
import torch
import torch.distributed as dist
from common import REPO_ROOT, spawn_workers
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper

from gadms.cli import register_all_modules
from gadms.datasets import SynthPerson
from gadms.models.score_bank import TokenScoreBank
from gadms.registry import MODELS

CONFIGS = {
    'clip-sdm': 'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py',
    'gadms': 'configs/gadms/gadms_tiny_1xb64_synthperson.py',
}
GLOBAL_BATCH = 8
PIPELINE = [
    dict(type='Resize', scale=(32, 96), keep_ratio=False),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]


def _dataset() -> SynthPerson:
    return SynthPerson(split='train', pipeline=PIPELINE,
                       num_identities=dict(train=6, val=1, test=1),
                       images_per_identity=2, captions_per_image=2)


def _batch(rank: int, world_size: int) -> dict:
    """This rank's share of a global batch in which identities repeat."""
    dataset = _dataset()
    indices = [0, 1, 2, 9, 4, 5, 10, 3]
    share = GLOBAL_BATCH // world_size
    return pseudo_collate(
        [dataset[i] for i in indices[rank * share:(rank + 1) * share]])


def _step(name: str, rank: int, world_size: int, initial: dict) -> tuple:
    """Build the model from ``initial`` weights and take one SGD step."""
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(REPO_ROOT,
                                                  CONFIGS[name])).model)
    model.load_state_dict(initial)
    if name == 'gadms':
        model.score_bank = TokenScoreBank(len(_dataset()))
    trained = model if world_size == 1 else MMDistributedDataParallel(
        module=model, device_ids=None)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1.0))
    MessageHub.get_instance(f'invariance-{name}-{world_size}').update_info(
        'iter', 0)
    log_vars = trained.train_step(_batch(rank, world_size), optim_wrapper)
    bank = torch.from_numpy(model.score_bank._array.copy()).float() \
        if name == 'gadms' else None
    return ({k: float(v.detach()) for k, v in log_vars.items()},
            {k: v.detach().clone() for k, v in model.state_dict().items()},
            bank)


def _worker(rank: int, name: str, tmp_dir: str, initial: dict) -> None:
    dist.init_process_group(
        'gloo', init_method=f'file://{osp.join(tmp_dir, "init")}',
        rank=rank, world_size=2)
    torch.save(_step(name, rank, 2, initial),
               osp.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


@pytest.mark.parametrize('name', list(CONFIGS))
def test_one_step_on_one_or_two_processes(name, tmp_path):
    register_all_modules()
    torch.manual_seed(0)
    initial = MODELS.build(
        Config.fromfile(osp.join(REPO_ROOT, CONFIGS[name])).model
    ).state_dict()
    single_log, single_params, single_bank = _step(name, 0, 1, initial)
    spawn_workers(_worker, 2, (name, str(tmp_path), initial))
    ranks = [torch.load(osp.join(tmp_path, f'rank{r}.pt'),
                        weights_only=False) for r in range(2)]
    # each rank logs the loss of its rows; their mean is the global loss
    for key, value in single_log.items():
        assert sum(r[0][key] for r in ranks) / 2 == pytest.approx(
            value, rel=1e-5, abs=1e-6), key
    if name == 'gadms':
        assert single_log['loss_mtp'] > 0
    changed = 0
    for key, value in single_params.items():
        for log, params, _ in ranks:
            torch.testing.assert_close(params[key], value, rtol=0, atol=1e-5,
                                       msg=key)
        changed += not torch.equal(value, initial[key])
    assert changed > 10  # the step did update the model
    if name == 'gadms':
        for _, _, bank in ranks:
            torch.testing.assert_close(bank, single_bank, rtol=0,
                                       atol=2e-3)
        assert not torch.equal(single_bank, torch.full_like(single_bank,
                                                            0.85))
