import os.path as osp

import pytest
import torch
from mmengine.config import Config

from gadms.registry import PARAM_SCHEDULERS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# method.md appendix B: epoch LR factors of the 30-epoch pretraining
EXPECTED = {1: 0.10, 2: 0.28, 3: 0.46, 4: 0.64, 5: 0.82, 6: 1.00,
            30: 0.0039}


def test_pretraining_schedule_matches_the_published_factors():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/gadms/vitb16_webperson.py'))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1.0)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s), default_args=dict(
            optimizer=optimizer)) for s in cfg.param_scheduler
    ]
    factors = {}
    for epoch in range(1, cfg.train_cfg.max_epochs + 1):
        factors[epoch] = optimizer.param_groups[0]['lr']
        for scheduler in schedulers:
            scheduler.step()
    for epoch, factor in EXPECTED.items():
        assert factors[epoch] == pytest.approx(factor, abs=5e-5), epoch
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.eps == 1e-3
