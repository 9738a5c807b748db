"""--paper-protocol: selection on the test splits, the best checkpoint per
benchmark, fine-tuning from the pretraining checkpoint best on CUHK-PEDES."""
import os
import os.path as osp

import pytest
from common import REPO_ROOT
from mmengine.config import Config

from gadms.cli import register_all_modules
from gadms.cli.paper_protocol import apply_paper_protocol


def _config(name: str) -> Config:
    register_all_modules()
    return Config.fromfile(osp.join(REPO_ROOT, 'configs/gadms', name))


def test_pretraining_selects_on_each_test_split():
    cfg = _config('gadms_vit-b16_8xb64_webperson.py')
    assert [d.split for d in cfg.val_dataloader.dataset.datasets] == [
        'val', 'val']  # gadms: CUHK-PEDES and RSTPReid val
    apply_paper_protocol(cfg)
    assert cfg.val_dataloader == cfg.test_dataloader
    assert [d.split for d in cfg.val_dataloader.dataset.datasets] == [
        'test'] * 3
    assert cfg.default_hooks.checkpoint.save_best == [
        'CUHK-PEDES/t2i/R1', 'ICFG-PEDES/t2i/R1', 'RSTPReid/t2i/R1']
    assert cfg.load_from is None


def test_fine_tuning_starts_from_the_best_cuhk_pretraining(tmp_path):
    cfg = _config('gadms_vit-b16_1xb128_rstpreid_finetune.py')
    pretraining = tmp_path / 'gadms_vit-b16_8xb64_webperson'
    pretraining.mkdir()
    cfg.load_from = str(pretraining / 'epoch_30.pth')
    with pytest.raises(FileNotFoundError,
                       match='best_CUHK-PEDES_t2i_R1_epoch_\\*.pth'):
        apply_paper_protocol(cfg)
    for i, name in enumerate(['best_RSTPReid_t2i_R1_epoch_30.pth',
                              'best_CUHK-PEDES_t2i_R1_epoch_9.pth',
                              'best_CUHK-PEDES_t2i_R1_epoch_12.pth']):
        (pretraining / name).touch()
        os.utime(pretraining / name, (i, i))
    apply_paper_protocol(cfg)
    assert cfg.load_from == str(pretraining /
                                'best_CUHK-PEDES_t2i_R1_epoch_12.pth')
    assert cfg.default_hooks.checkpoint.save_best == 't2i/R1'
    assert cfg.val_dataloader.dataset.split == 'test'
