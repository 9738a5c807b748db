import logging
import os
import os.path as osp

import pytest
from common import REPO_ROOT
from mmengine.logging import MMLogger

from gadms.cli import register_all_modules

register_all_modules()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'benchmark: heavy check, excluded from the test suite')


class _LogCapture(logging.Handler):
    """Messages of MMEngine's current logger, joined in ``text``."""

    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @property
    def text(self) -> str:
        return '\n'.join(self.messages)


@pytest.fixture
def caplog_mm():
    """What gadms logs through ``print_log(logger='current')`` during the
    test (MMEngine's logger does not propagate to pytest's ``caplog``)."""
    logger = MMLogger.get_current_instance()
    capture = _LogCapture()
    logger.addHandler(capture)
    yield capture
    logger.removeHandler(capture)


# what the shipped recipes read, as docs/reproduce.md lays it out: the
# dry run checks that these exist (their contents are not read)
DOWNLOADS = ('checkpoints/ViT-B-16.pt',
             'data/WebPerson/data/train-00000-of-00001.parquet',
             'data/WebPerson-1M/data/train-00000-of-00001.parquet',
             'data/CUHK-PEDES/reid_raw.json',
             'data/ICFG-PEDES/ICFG-PEDES.json',
             'data/RSTPReid/data_captions.json')
PRETRAINING_RUNS = ('gadms_vit-b16_8xb64_webperson',
                    'gadms_vit-b16_8xb64_webperson-1m',
                    'gadms_vit-b16_8xb64_webperson-100k')


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory with the repository's configs, empty stand-ins
    for the downloads and the work dirs of finished pretraining runs (for
    --paper-protocol fine-tuning)."""
    os.symlink(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    for path in DOWNLOADS:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    for run in PRETRAINING_RUNS:
        folder = tmp_path / 'work_dirs' / run
        folder.mkdir(parents=True)
        (folder / 'best_CUHK-PEDES_t2i_R1_epoch_21.pth').touch()
        (folder / 'epoch_30.pth').touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    monkeypatch.delenv('SLURM_NTASKS', raising=False)
    return tmp_path
