import logging

import pytest
from mmengine.logging import MMLogger

from gadms.utils import register_all_modules

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
