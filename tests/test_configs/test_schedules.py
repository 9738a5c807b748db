import math
import os.path as osp

import pytest
import torch
from common import REPO_ROOT
from mmengine.config import Config

from gadms.registry import PARAM_SCHEDULERS


def epoch_factors(config: str) -> dict:
    """LR factor of every (1-based) epoch, with the schedulers built as the
    Runner builds them (a missing ``end`` becomes ``max_epochs``)."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, config))
    max_epochs = cfg.train_cfg.max_epochs
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1)
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(s, end=s.get('end', max_epochs)),
            default_args=dict(optimizer=optimizer))
        for s in cfg.param_scheduler
    ]
    factors = {}
    for epoch in range(1, max_epochs + 1):
        factors[epoch] = optimizer.param_groups[0]['lr']
        for scheduler in schedulers:
            scheduler.step()
    return factors


def test_pretraining_schedule_matches_the_published_factors():
    # method.md appendix B: epoch LR factors of the 30-epoch pretraining
    expected = {1: 0.10, 2: 0.28, 3: 0.46, 4: 0.64, 5: 0.82, 6: 1.00,
                30: 0.0039}
    factors = epoch_factors('configs/gadms/gadms_vit-b16_8xb64_webperson.py')
    for epoch, factor in expected.items():
        assert factors[epoch] == pytest.approx(factor, abs=5e-5), epoch
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'))
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.eps == 1e-3


def test_finetuning_schedule_has_the_same_shape_over_60_epochs():
    factors = epoch_factors(
        'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py')
    assert len(factors) == 60
    assert factors[1] == pytest.approx(0.1)
    assert factors[6] == pytest.approx(1.0)
    # cosine from epoch 6 (step 0) to epoch 60 (step 54 of 55)
    assert factors[60] == pytest.approx(0.5 * (1 + math.cos(math.pi * 54 /
                                                            55)))
    cfg = Config.fromfile(
        osp.join(REPO_ROOT,
                 'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py'))
    assert cfg.optim_wrapper.optimizer.lr == 1e-5
    assert cfg.model.id_head.num_classes == 11003
    assert cfg.load_from.endswith('gadms_vit-b16_8xb64_webperson/epoch_30.pth')
