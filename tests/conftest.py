import os.path as osp

import pytest

from gadms.utils import register_all_modules

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

register_all_modules()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'benchmark: heavy check, excluded from the test suite')


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT
