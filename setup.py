"""Install gadms: ``pip install -e .`` (add ``[tests]`` for the test tools)."""
from pathlib import Path
from typing import List

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> List[str]:
    """Return the requirement lines of ``requirements/<name>.txt``."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.strip() for line in lines
            if line.strip() and not line.startswith(('#', '-'))]


def read_version() -> str:
    """Read ``__version__`` from ``gadms/version.py`` without importing it."""
    scope: dict = {}
    exec((HERE / 'gadms' / 'version.py').read_text(), scope)
    return scope['__version__']


setup(
    name='gadms',
    version=read_version(),
    description='Text-based person retrieval toolbox: GA-DMS and baselines '
    'on MMEngine',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    package_data={'gadms.serving': ['page.html']},
    install_requires=read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
        'corpus': read_requirements('corpus'),
        'serve': read_requirements('serve'),
    },
    zip_safe=False,
)
