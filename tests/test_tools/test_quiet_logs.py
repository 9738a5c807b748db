"""The console shows a short header and the results; the environment, the
config and the hook order go to the run's log file."""
import glob
import os.path as osp

import torch
from common import run_fresh_tool
from mmengine.config import Config

from gadms.cli import register_all_modules
from gadms.registry import MODELS

CONFIG = 'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'


def test_console_header_is_short_and_the_log_file_has_everything(tmp_path):
    register_all_modules()
    clip = str(tmp_path / 'clip.pt')
    torch.save(MODELS.build(Config.fromfile(CONFIG).model).backbone.clip
               .state_dict(), clip)
    work_dir = str(tmp_path / 'run')
    # a new interpreter: the console as a user sees it, import-time
    # warnings included
    result = run_fresh_tool('tools/test.py', CONFIG, '--pretrained', clip,
                            '--work-dir', work_dir, '--cfg-options',
                            'test_dataloader.dataset.num_identities.test=4',
                            'test_dataloader.num_workers=0',
                            'test_dataloader.persistent_workers=False')
    assert result.returncode == 0, result.stderr[-3000:]
    console = (result.stderr + result.stdout).splitlines()
    table = next(i for i, line in enumerate(console)
                 if 'text-to-image retrieval' in line)
    assert table <= 40, '\n'.join(console[:table])
    assert not any('System environment' in line or line.startswith(
        'Config:') for line in console)
    log_file, = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert any(f'config and hook order in {log_file}' in line
               for line in console)
    with open(log_file) as f:
        logged = f.read()
    for report in ('System environment:', 'Config:\n',
                   'Hooks will be executed in the following order'):
        assert report in logged
