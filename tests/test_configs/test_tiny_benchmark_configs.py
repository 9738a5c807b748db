"""The tiny benchmark configs train and test on layout data, pointed at
the folder with --data-root."""
import json
import os.path as osp

import pytest
from common import REPO_ROOT, run_tool, run_tool_main
from mmengine.config import Config
from tiny_models import SHRINK_OPTIONS

from gadms.cli import set_data_root

SIZES = ['--train-ids', '6', '--val-ids', '2', '--test-ids', '3',
         '--images-per-identity', '2']
SHORT = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
         *SHRINK_OPTIONS] + [
    f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                     'test_dataloader')
    for key in ('batch_size=8', 'num_workers=0', 'persistent_workers=False')
]


def _run(*args: str) -> str:
    result = run_tool(*args)
    assert result.returncode == 0, result.stdout[-2000:] + \
        result.stderr[-2000:]
    return result.stdout + result.stderr


@pytest.mark.parametrize('layout', ['cuhk-pedes', 'icfg-pedes', 'rstpreid'])
def test_tiny_config_trains_and_tests_on_layout_data(layout, tmp_path):
    root = str(tmp_path / layout)
    run_tool_main('tools/dataset_converters/synth_person_to_benchmark.py',
                  root, '--layout', layout, *SIZES)
    config = f'configs/gadms/gadms_tiny_{layout}.py'
    work_dir = str(tmp_path / 'work')
    _run('tools/train.py', config, '--work-dir', work_dir, '--data-root',
         root, '--cfg-options', *SHORT)
    out = str(tmp_path / 'metrics.json')
    log = _run('tools/test.py', config, osp.join(work_dir, 'epoch_2.pth'),
               '--work-dir', work_dir, '--data-root', root, '--out', out,
               '--cfg-options', *SHORT,
               'test_dataloader.batch_size=2')
    # EvalProgressHook: 3 batches, one line each (at most 10)
    assert [line.split('test batches: ')[1].split(' (')[0]
            for line in log.splitlines() if 'test batches: ' in line] == [
                '1/3', '2/3', '3/3']
    metrics = json.load(open(out))
    # 3 test identities x 2 images: every query has its images in a
    # gallery of 6, so R10 is 100
    assert metrics['t2i/R10'] == 100.0
    assert 0 <= metrics['t2i/R1'] <= 100


def test_data_root_reaches_every_loader_and_refuses_several_folders():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_rstpreid.py'))
    set_data_root(cfg, '/data/mine')
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[name].dataset.data_root == '/data/mine'
    pretrain = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'))
    with pytest.raises(ValueError, match='reads 4'):
        set_data_root(pretrain, '/data/mine')
