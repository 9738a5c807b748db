"""Config names follow mmpretrain's pattern; the earlier names still load
through the tools, with a note."""
import glob
import os.path as osp
import re
import warnings

import pytest
from common import REPO_ROOT

from gadms.cli import read_config
from gadms.cli.config_names import RENAMED_CONFIGS, resolve_config_path

# {method}_{backbone}_{gpus}xb{batch}_{data}[_{variant}].py
PATTERN = re.compile(r'^[a-z-]+_[a-z0-9-]+_\d+xb\d+_[a-z0-9-]+(_[a-z0-9-]+)?'
                     r'\.py$')


def _configs():
    return sorted(
        osp.relpath(p, REPO_ROOT)
        for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                           recursive=True) if '_base_' not in p)


@pytest.mark.parametrize('config', _configs())
def test_every_config_name_follows_the_pattern(config):
    assert PATTERN.match(osp.basename(config)), config


def test_every_earlier_name_maps_to_a_config_and_is_gone():
    assert sorted(RENAMED_CONFIGS.values()) == sorted(
        set(RENAMED_CONFIGS.values()))
    for old, new in RENAMED_CONFIGS.items():
        assert not osp.exists(osp.join(REPO_ROOT, old)), old
        assert osp.isfile(osp.join(REPO_ROOT, new)), new


def test_an_earlier_name_loads_the_renamed_config(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    old = 'configs/gadms/vitb16_webperson.py'
    with pytest.warns(FutureWarning, match='is now configs/gadms/'
                      'gadms_vit-b16_8xb64_webperson.py'):
        cfg = read_config(old)
    assert osp.abspath(cfg.filename) == osp.abspath(
        'configs/gadms/gadms_vit-b16_8xb64_webperson.py')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert resolve_config_path('configs/gadms/nope.py') == (
            'configs/gadms/nope.py')
        new = 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'
        assert resolve_config_path(new) == new
