"""A recipe's declared global batch survives a change of GPU count: the run
is refused, or the per-process batch or the learning rate is scaled."""
import os.path as osp
import re

import pytest
from common import REPO_ROOT, run_tool
from mmengine.config import Config
from test_training_faults import _runner

from gadms.engine.global_batch import fit_global_batch

RECIPE = 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'  # 512 = 8 x 64


def _recipe():
    cfg = Config.fromfile(osp.join(REPO_ROOT, RECIPE))
    return cfg.train_dataloader, cfg.auto_scale_lr


@pytest.mark.parametrize('world_size, refused', [(1, True), (2, True),
                                                 (8, False)])
def test_the_recipe_runs_only_on_its_global_batch(world_size, refused):
    loader, scaling = _recipe()
    assert scaling.base_batch_size == 512 and loader.batch_size == 64
    if refused:
        with pytest.raises(ValueError, match=(
                f'global batch of 512.*{world_size} process.*x batch_size '
                f'64 = {64 * world_size}. Launch 8 process')):
            fit_global_batch(loader, scaling, world_size)
    else:
        assert fit_global_batch(loader, scaling, world_size) == (loader,
                                                                 scaling)


@pytest.mark.parametrize('world_size', [1, 2, 8])
def test_scale_batch_keeps_the_global_batch(world_size):
    loader, scaling = _recipe()
    scaled, same = fit_global_batch(loader, scaling, world_size,
                                    'scale_batch')
    assert scaled['batch_size'] * world_size == 512 and same == scaling
    assert loader.batch_size == 64  # the config itself is not changed


@pytest.mark.parametrize('world_size', [1, 2, 8])
def test_scale_lr_hands_mmengine_the_declared_batch(world_size):
    loader, scaling = _recipe()
    same, enabled = fit_global_batch(loader, scaling, world_size, 'scale_lr')
    assert same.batch_size == 64
    assert enabled == dict(base_batch_size=512, enable=True)


def test_uneven_splits_and_unknown_policies_are_errors():
    loader, scaling = _recipe()
    with pytest.raises(ValueError, match='512 does not split evenly over 3'):
        fit_global_batch(loader, scaling, 3, 'scale_batch')
    with pytest.raises(ValueError, match="policy must be one of.*'grow'"):
        fit_global_batch(loader, scaling, 8, 'grow')


def test_a_config_without_a_declared_batch_runs_anywhere():
    loader = dict(batch_size=7)
    assert fit_global_batch(loader, None, 3) == (loader, None)


def test_the_runner_refuses_before_training_and_scales_lr_when_told(
        tmp_path):
    declared = dict(auto_scale_lr=dict(base_batch_size=64))  # 1 x 32 here
    runner = _runner(tmp_path / 'refused', **declared)
    with pytest.raises(ValueError, match='global batch of 64'):
        runner.train()
    assert runner.iter == 0
    runner = _runner(tmp_path / 'scaled', global_batch_policy='scale_lr',
                     train_cfg=dict(max_epochs=1), **declared)
    lr = runner.cfg.optim_wrapper.optimizer.lr
    runner.train()
    assert runner.optim_wrapper.param_groups[0]['initial_lr'] == lr / 2


def test_train_tool_dry_run_checks_the_launch(sandbox):
    tool = osp.join(REPO_ROOT, 'tools/train.py')
    refused = run_tool(tool, RECIPE, '--dry-run', cwd=str(sandbox))
    assert refused.returncode != 0
    assert 'Launch 8 process(es), or pass --scale-batch' in refused.stderr
    scaled = run_tool(tool, RECIPE, '--dry-run', '--scale-batch',
                      cwd=str(sandbox))
    assert scaled.returncode == 0, scaled.stderr
    assert re.search(r'batch +512 per process, 512 global', scaled.stdout)
