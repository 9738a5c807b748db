import os
import os.path as osp

import pytest
from common import REPO_ROOT


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with the repository's configs and the work dirs
    of finished pretraining runs (for --paper-protocol fine-tuning)."""
    os.symlink(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    for run in ('vitb16_webperson', 'vitb16_webperson-1m'):
        folder = tmp_path / 'work_dirs' / run
        folder.mkdir(parents=True)
        (folder / 'best_CUHK-PEDES_t2i_R1_epoch_21.pth').touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    monkeypatch.delenv('SLURM_NTASKS', raising=False)
    return tmp_path
