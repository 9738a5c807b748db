"""Read the tensors of a TorchScript archive without running its code.

OpenAI ships CLIP as TorchScript archives (``ViT-B-16.pt``).
``torch.jit.load`` compiles and runs the archive's ``code/`` (arbitrary
Python-like TorchScript), so gadms never calls it. The module tree itself is
a pickle (``<archive>/data.pkl``) of script-module objects whose state dicts
hold the parameters as tensors over storages in ``<archive>/data/<key>``.
:func:`read_torchscript_tensors` unpickles that file with an allow-list:
script-module classes become plain attribute records, tensors are rebuilt
from the raw storage bytes, and any other global (a function call the
pickle might smuggle in) is an error naming it.
"""
import io
import pickle
import zipfile
from collections import OrderedDict
from typing import Dict

import torch

_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32,
    'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8,
    'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}


class _ScriptModuleRecord:
    """A script module of the archive: only its attributes are kept."""

    def __setstate__(self, state: dict) -> None:
        self.attributes = state


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple,
                    stride: tuple, *_unused) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` over a flat storage tensor
    (``requires_grad``, hooks and metadata are not needed here)."""
    return torch.as_strided(storage, size, stride, offset).clone()


class _TensorsOnlyUnpickler(pickle.Unpickler):

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str,
                 path: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.path = archive, prefix, path

    def find_class(self, module: str, name: str):
        if module == '__torch__' or module.startswith('__torch__.'):
            return _ScriptModuleRecord
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return _rebuild_tensor
        if (module, name) == ('collections', 'OrderedDict'):
            return OrderedDict
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(
            f'{self.path}: the TorchScript archive names {module}.{name}, '
            'which a tensors-only read does not allow')

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != 'storage' or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(
                f'{self.path}: unexpected persistent id {pid!r}')
        raw = bytearray(self.archive.read(f'{self.prefix}/data/{key}'))
        storage = torch.frombuffer(raw, dtype=dtype) if raw else \
            torch.empty(0, dtype=dtype)
        if storage.numel() != numel:
            raise pickle.UnpicklingError(
                f'{self.path}: storage {key} holds {storage.numel()} '
                f'elements, the pickle expects {numel}')
        return storage


def _flatten(record: _ScriptModuleRecord, prefix: str,
             out: Dict[str, torch.Tensor]) -> None:
    for name, value in record.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptModuleRecord):
            _flatten(value, f'{prefix}{name}.', out)


def read_torchscript_tensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree, by dotted name
    (what ``torch.jit.load(path).state_dict()`` returns, plus any
    non-persistent buffers), without executing the archive.

    Raises:
        ValueError: ``path`` is not a TorchScript archive, or its module
            pickle names anything but script modules and tensors.
    """
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith('/data.pkl')
                   and n.count('/') == 1]
        if len(pickles) != 1:
            raise ValueError(f'{path}: not a TorchScript archive (no single '
                             '<archive>/data.pkl)')
        prefix = pickles[0].split('/')[0]
        try:
            root = _TensorsOnlyUnpickler(archive.read(pickles[0]), archive,
                                         prefix, path).load()
        except (pickle.UnpicklingError, KeyError, ValueError,
                TypeError) as err:
            raise ValueError(f'{path}: cannot read the TorchScript '
                             f'archive\'s tensors ({err})') from err
    if not isinstance(root, _ScriptModuleRecord):
        raise ValueError(f'{path}: the archive\'s data.pkl is not a module')
    tensors: Dict[str, torch.Tensor] = OrderedDict()
    _flatten(root, '', tensors)
    return tensors
