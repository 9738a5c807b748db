"""The package's floors: every module imports only from its own part of
gadms or from a lower floor, and importing a module does nothing else."""
import ast
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

from common import REPO_ROOT

# lowest first; a part of gadms may import its own modules and those of
# lower floors only (docs/extending.md, "Map of the package")
FLOORS = (
    ('gadms.version', ),
    ('gadms', 'gadms.common'),
    ('gadms.registry', 'gadms.structures'),
    ('gadms.datasets', 'gadms.corpus', 'gadms.evaluation'),
    ('gadms.models', 'gadms.visualization'),
    ('gadms.engine', ),
    ('gadms.apis', ),
    ('gadms.cli', 'gadms.serving'),
    # tests and benchmarks only: nothing in gadms may import it
    ('gadms.testing', ),
)
FLOOR = {part: level for level, parts in enumerate(FLOORS) for part in parts}
PACKAGE = osp.join(REPO_ROOT, 'gadms')


def _part(module: str) -> str:
    """The part of gadms a module belongs to (``gadms.models.necks.x`` ->
    ``gadms.models``; the package's own ``__init__`` -> ``gadms``)."""
    return '.'.join(module.split('.')[:2])


def _module_name(path: str) -> str:
    name = osp.relpath(path, REPO_ROOT)[:-len('.py')].replace(os.sep, '.')
    return name[:-len('.__init__')] if name.endswith('.__init__') else name


def package_sources() -> Dict[str, str]:
    """``{module name: source}`` of every module of gadms."""
    sources = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = osp.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    sources[_module_name(path)] = f.read()
    return sources


def imported_modules(module: str, source: str, is_package: bool) -> List[str]:
    """Every gadms module ``source`` imports, at any depth of the code
    (a function's lazy import counts too), relative imports resolved."""
    here = module.split('.') if is_package else module.split('.')[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                found.append('.'.join(base + (
                    [node.module] if node.module else [])))
            else:
                found.append(node.module)
    return [name for name in found
            if name == 'gadms' or name.startswith('gadms.')]


def upward_imports(sources: Dict[str, str],
                   packages: frozenset = frozenset()) -> List[str]:
    """``'a imports b'`` for each import of ``sources`` that goes to
    another part on the same or a higher floor."""
    found = []
    for module, source in sorted(sources.items()):
        here = _part(module)
        for target in imported_modules(module, source, module in packages):
            there = _part(target)
            if there != here and FLOOR[there] >= FLOOR[here]:
                found.append(f'{module} imports {target}')
    return found


def _packages(sources: Dict[str, str]) -> frozenset:
    return frozenset(m for m in sources if osp.isfile(
        osp.join(REPO_ROOT, *m.split('.'), '__init__.py')))


def test_every_part_of_gadms_has_a_floor():
    parts = {_part(m) for m in package_sources()}
    assert parts <= set(FLOOR), sorted(parts - set(FLOOR))


def test_no_module_imports_upward():
    sources = package_sources()
    assert upward_imports(sources, _packages(sources)) == []


def test_an_upward_or_sideways_import_is_found():
    sources = {
        'gadms.datasets.reader': 'from gadms.engine import GADMSRunner\n',
        'gadms.models.heads': 'def f():\n    from ...cli import x\n',
        'gadms.corpus.stage': 'import gadms.evaluation.metrics\n',
        'gadms.apis.app': 'from gadms.testing.loopback import SceneWeb\n',
        'gadms.engine.ok': 'from ..models import x\nfrom . import y\n',
    }
    assert upward_imports(sources, frozenset({'gadms.models.heads'})) == [
        'gadms.apis.app imports gadms.testing.loopback',
        'gadms.corpus.stage imports gadms.evaluation.metrics',
        'gadms.datasets.reader imports gadms.engine',
        'gadms.models.heads imports gadms.cli',
    ]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-X', 'importtime', '-c', code],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def test_datasets_import_without_the_runner():
    result = _run('import gadms.datasets')
    assert result.returncode == 0, result.stderr
    imported = {line.split('|')[-1].strip()
                for line in result.stderr.splitlines()
                if line.startswith('import time:')}
    assert 'gadms.datasets' in imported
    assert not {m for m in imported if m.startswith('mmengine.runner')}
    assert not {m for m in imported if m.startswith(('gadms.engine',
                                                     'gadms.cli'))}


# imports every module of gadms but the tools' floor, then reports what
# the imports changed in the process (OpenCV's import sets LD_LIBRARY_PATH
# itself: it is imported first)
SIDE_EFFECTS = '''
import json, multiprocessing.forkserver as forkserver, os, sys
import cv2, torch, torch.serialization
from mmengine.logging.history_buffer import HistoryBuffer
environ = dict(os.environ)
getstate = HistoryBuffer.__dict__.get('__getstate__')
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(dict(
    environ=sorted(set(os.environ.items()) ^ set(environ.items())),
    safe_globals=[str(g) for g in torch.serialization.get_safe_globals()
                  if g is HistoryBuffer],
    history_buffer=HistoryBuffer.__dict__.get('__getstate__') is not getstate,
    process_group=torch.distributed.is_initialized(),
    forkserver_preload=forkserver._forkserver._preload_modules)))
'''


def test_importing_a_module_changes_nothing():
    modules = sorted(m for m in package_sources()
                     if _part(m) != 'gadms.cli')
    result = subprocess.run(
        [sys.executable, '-c', SIDE_EFFECTS, *modules], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    changes = json.loads(result.stdout.strip().splitlines()[-1])
    assert changes == dict(environ=[], safe_globals=[],
                           history_buffer=False, process_group=False,
                           forkserver_preload=['__main__'])
