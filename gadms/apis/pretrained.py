"""Trained retrievers as the folders the ecosystem shares (the Hugging Face
Hub's layout): ``model.safetensors`` (the weights), ``config.json`` (what
builds the model and prepares its images) and a ``README.md`` model card.

Reading such a folder runs no code from it: the weights are safetensors
(no pickle), the config is JSON rather than a Python config, and every
``type`` it names must be a plain name already registered with gadms
or ``scope.Name`` of an OpenMMLab package's registry (MMEngine's registry
would otherwise import any dotted name it is given).
``config.json`` records the fingerprint of the exported model, so weights
or a config changed after export are refused.
"""
import json
import os.path as osp
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from mmengine.config import Config

from gadms.version import __version__

WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
CARD_FILE = 'README.md'
# the layout of config.json; a reader refuses another
PRETRAINED_FORMAT = 'gadms-pretrained/1'
CONFIG_KEYS = frozenset({'format', 'gadms_version', 'fingerprint', 'model',
                         'test_dataloader', 'source'})
# the packages whose registered modules a config may name as
# ``scope.Name`` (any other dotted name would make MMEngine import it)
OPENMMLAB_SCOPES = ('mmengine', 'mmcv', 'mmpretrain')


class PretrainedFolderError(ValueError):
    """A pretrained folder that cannot be loaded as it is."""


def inference_config(cfg: Config, image_steps: Iterable[dict]) -> dict:
    """The parts of a training config that inference needs, JSON-ready:
    the model (its backbone's ``pretrained`` weights left out: the folder
    holds every weight) and the test pipeline's image steps.

    Raises:
        PretrainedFolderError: a value JSON cannot hold (named by its key).
    """
    model = cfg.model.to_dict()
    model['backbone'] = dict(model['backbone'], pretrained=None)
    content = dict(model=model, test_dataloader=dict(
        dataset=dict(pipeline=list(image_steps))))
    _check_json(content, 'config')
    return json.loads(json.dumps(content))


def _check_json(node: Any, where: str) -> None:
    """Raise naming the first value that JSON cannot hold."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_json(value, f'{where}.{key}')
    elif isinstance(node, (list, tuple)):
        for position, value in enumerate(node):
            _check_json(value, f'{where}[{position}]')
    elif not isinstance(node, (str, int, float, bool, type(None))):
        raise PretrainedFolderError(
            f'{where} is a {type(node).__name__} ({node!r}), which a '
            'pretrained folder (JSON) cannot hold')


def _registered_names(scopes: Iterable[str]) -> frozenset:
    """Every name a gadms registry (or MMEngine's above it) can build, and
    ``scope.Name`` for the OpenMMLab ``scopes`` asked for (their packages'
    registries imported)."""
    import importlib

    from gadms import registry
    for scope in set(scopes) & set(OPENMMLAB_SCOPES):
        importlib.import_module(f'{scope}.registry')
    names = set()
    for name in registry.__all__:
        node = getattr(registry, name)
        node.import_from_location()
        names.update(node.module_dict)
        root = node.parent
        names.update(root.module_dict)
        names.update(f'mmengine.{kind}' for kind in root.module_dict)
        for scope, child in root._children.items():
            if scope in scopes and scope in OPENMMLAB_SCOPES:
                child.import_from_location()
                names.update(f'{scope}.{kind}' for kind in child.module_dict)
    return frozenset(names)


def _types(node: Any) -> Iterable[Any]:
    """Every ``type`` value in a nested config."""
    if isinstance(node, dict):
        if 'type' in node:
            yield node['type']
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types(value)


def check_types(node: Any, where: str, allowed: frozenset) -> None:
    """Refuse a ``type`` that is not a plain registered name.

    Raises:
        PretrainedFolderError: naming the key and the value.
    """
    if isinstance(node, dict):
        kind = node.get('type')
        if 'type' in node and not (isinstance(kind, str)
                                   and kind in allowed):
            raise PretrainedFolderError(
                f'{where}.type is {kind!r}, not a name registered with '
                'gadms: a pretrained folder may only build registered '
                'modules')
        for key, value in node.items():
            check_types(value, f'{where}.{key}', allowed)
    elif isinstance(node, list):
        for position, value in enumerate(node):
            check_types(value, f'{where}[{position}]', allowed)


def read_pretrained_config(folder: str) -> Tuple[Config, str]:
    """The model config of a pretrained folder and the fingerprint it
    recorded at export.

    Raises:
        FileNotFoundError: the folder lacks ``config.json`` or the weights.
        PretrainedFolderError: not JSON, another format, unknown or missing
            keys, or a ``type`` that is not registered.
    """
    path = osp.join(folder, CONFIG_FILE)
    for needed in (path, osp.join(folder, WEIGHTS_FILE)):
        if not osp.isfile(needed):
            raise FileNotFoundError(
                f'{needed} does not exist: a pretrained folder holds '
                f'{CONFIG_FILE} and {WEIGHTS_FILE} (written by '
                'tools/model_converters/export_pretrained.py)')
    try:
        with open(path, encoding='utf-8') as f:
            content = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedFolderError(f'{path} is not JSON: {err}') from err
    if not isinstance(content, dict) or content.get(
            'format') != PRETRAINED_FORMAT:
        found = content.get('format') if isinstance(content, dict) else None
        raise PretrainedFolderError(
            f'{path}: format {found!r}, expected {PRETRAINED_FORMAT!r}')
    unknown = sorted(set(content) - CONFIG_KEYS)
    missing = sorted(CONFIG_KEYS - {'source'} - set(content))
    if unknown or missing:
        raise PretrainedFolderError(
            f'{path}: unknown keys {unknown}, missing keys {missing}')
    scopes = {kind.split('.')[0] for key in ('model', 'test_dataloader')
              for kind in _types(content[key])
              if isinstance(kind, str) and '.' in kind}
    allowed = _registered_names(scopes)
    for key in ('model', 'test_dataloader'):
        check_types(content[key], f'{path}: {key}', allowed)
    return Config(dict(model=content['model'],
                       test_dataloader=content['test_dataloader'])), \
        content['fingerprint']


def read_metrics(path: Optional[str]) -> Dict[str, float]:
    """Metrics (``name/metric: value``) of a test: the file written by
    ``tools/test.py --out`` or MMEngine's log of the test
    (``<timestamp>.json``, one JSON object per line; the last with
    metrics counts).

    Raises:
        PretrainedFolderError: no line of the file holds a metric.
    """
    if path is None:
        return {}
    metrics: Dict[str, float] = {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            record = json.loads(line) if line.startswith('{') else {}
            found = {k: float(v) for k, v in record.items()
                     if '/' in k and isinstance(v, (int, float))}
            metrics = found or metrics
    if not metrics:
        raise PretrainedFolderError(
            f'{path}: no metrics (keys such as "t2i/R1"); pass the file of '
            'tools/test.py --out or the test\'s <timestamp>.json log')
    return metrics


def write_pretrained(out_dir: str, state_dict: Dict[str, Any],
                     config: dict, fingerprint: str, card: str,
                     source: Optional[dict] = None,
                     check: Optional[Callable[[str], Any]] = None) -> None:
    """Write a pretrained folder, renamed into place whole: ``state_dict``
    as safetensors, ``config`` (from :func:`inference_config`) with the
    fingerprint, and the model card ``card``. ``check`` is called with the
    written folder under its temporary name; if it raises, nothing is
    renamed into place."""
    from safetensors.torch import save_file

    from gadms.common.atomic import atomic_folder, atomic_write, write_json

    # safetensors refuses tensors that share memory (tied weights): each
    # key gets its own copy, which loads back into either tie
    tensors = {key: value.detach().cpu().contiguous().clone()
               for key, value in state_dict.items()}
    with atomic_folder(out_dir) as part:
        save_file(tensors, osp.join(part, WEIGHTS_FILE),
                  metadata=dict(format='pt', gadms_version=__version__))
        write_json(osp.join(part, CONFIG_FILE),
                   dict(format=PRETRAINED_FORMAT, gadms_version=__version__,
                        fingerprint=fingerprint, source=source or {},
                        **config), indent=1)
        with atomic_write(osp.join(part, CARD_FILE)) as f:
            f.write(card)
        if check is not None:
            check(part)
