from gadms.utils import register_all_modules

register_all_modules()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'benchmark: heavy check, excluded from the test suite')
