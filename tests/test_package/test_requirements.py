"""Requirements accept compatible ranges; the constraints file pins the
exact, tested stack inside every range."""
import os.path as osp

import pytest
from common import REPO_ROOT
from packaging.requirements import Requirement

REQUIREMENTS = osp.join(REPO_ROOT, 'requirements')


def _lines(name: str) -> list:
    with open(osp.join(REQUIREMENTS, f'{name}.txt')) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def _pins() -> dict:
    pins = {}
    for line in _lines('constraints'):
        name, version = line.split('==')
        pins[name.lower().replace('_', '-')] = version
    return pins


@pytest.mark.parametrize('name', ['runtime', 'corpus', 'tests'])
def test_ranges_hold_the_pinned_versions(name):
    pins = _pins()
    for line in _lines(name):
        requirement = Requirement(line)
        assert not any(s.operator == '==' for s in requirement.specifier), (
            f'{name}.txt pins {line}: use a range (exact versions go in '
            'constraints.txt)')
        key = requirement.name.lower().replace('_', '-')
        assert key in pins, f'{requirement.name} is not in constraints.txt'
        assert requirement.specifier.contains(pins[key],
                                              prereleases=True), (
            f'constraints.txt pins {key}=={pins[key]} outside {line}')


def test_torch_and_mmengine_have_tested_lower_bounds():
    pins = _pins()
    for line in _lines('runtime'):
        requirement = Requirement(line)
        if requirement.name in ('torch', 'mmengine'):
            lower = [s.version for s in requirement.specifier
                     if s.operator == '>=']
            assert lower == [pins[requirement.name]]  # the tested version
