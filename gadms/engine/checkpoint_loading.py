"""Read checkpoints and load them into models without silent wrong answers.

- A file that cannot be read is named with what is wrong with it: empty,
  truncated or corrupt (not a torch zip archive, or failing its CRCs), or
  holding objects outside the weights-only allow-list (the only case where
  ``--trust-checkpoint`` is the right advice).
- A readable file that is not a model checkpoint (a gallery index written by
  :meth:`gadms.apis.GalleryIndex.save`, any dict that is not a state dict)
  is named as such.
- A model checkpoint whose keys do not fit the model (missing, unexpected or
  of another shape) is refused, listing the keys, unless a partial load was
  asked for explicitly; then the keys are logged as a warning.
"""
import logging
import os.path as osp
import re
import zipfile
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

from gadms.common.checkpoint_compat import allow_mmengine_checkpoint_globals
from gadms.common.formats import GALLERY_INDEX_KEYS

TRUST_HINT = ('if you trust its source, load it with --trust-checkpoint '
              '(unsafe: runs arbitrary pickled code)')
PARTIAL_HINT = ('if a partial load is intended (e.g. a pretraining '
                'checkpoint for a model with new heads), pass '
                '--partial-load or set load_partial (True or key prefixes) '
                'in the config')
# how torch's weights-only unpickler names the global it refused: an
# unknown class ("Unsupported global: GLOBAL m.C") or one from a blocked
# module such as os ("unsupported GLOBAL posix.system whose module ...")
REFUSED_GLOBAL = re.compile(r'(?:Unsupported global: GLOBAL|unsupported '
                            r'GLOBAL) ([\w.]+)')
# weights written by safetensors (a pretrained folder's model.safetensors)
SAFETENSORS_SUFFIX = '.safetensors'
# the longest key list quoted in an error
MAX_LISTED_KEYS = 20


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be loaded, or does not fit the model."""


def is_readable_checkpoint(path: str) -> bool:
    """Whether ``path`` is a complete torch zip archive (CRCs checked)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def _what_is_wrong(path: str) -> str:
    """Why a file that is not a readable checkpoint cannot be loaded."""
    if osp.getsize(path) == 0:
        return 'is empty'
    if not zipfile.is_zipfile(path):
        return ('is truncated or corrupt: not a torch checkpoint (zip '
                'archive)')
    return 'is truncated or corrupt'


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """Load a checkpoint file (local path or any URL MMEngine reads) the
    way MMEngine does, with errors that say what is wrong with the file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: empty, truncated or corrupt; holding untrusted
            objects; or not a dict.
    """
    if filename.endswith(SAFETENSORS_SUFFIX):
        return dict(state_dict=_read_safetensors(filename))
    allow_mmengine_checkpoint_globals()
    try:
        checkpoint = CheckpointLoader.load_checkpoint(
            filename, map_location=map_location, logger=None)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch/zip/pickle raise many kinds
        message = str(err)
        # a complete pickle that names a global outside the allow-list;
        # anything else that fails to parse is a broken file
        refused = REFUSED_GLOBAL.search(message)
        if refused:
            raise CheckpointError(
                f'checkpoint {filename} holds objects outside the '
                f'weights-only allow-list (it names {refused[1]}); '
                f'{TRUST_HINT}') from err
        if osp.isfile(filename) and not is_readable_checkpoint(filename):
            first_line = (message.splitlines() or [''])[0]
            raise CheckpointError(
                f'checkpoint {filename} {_what_is_wrong(filename)} '
                f'({type(err).__name__}: {first_line})') from err
        raise
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'{filename} is not a model checkpoint: it holds a '
            f'{type(checkpoint).__name__}, not a dict')
    return checkpoint


def _read_safetensors(filename: str) -> Dict[str, torch.Tensor]:
    """The tensors of a safetensors file (no pickle: nothing to trust).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a complete safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    try:
        return load_file(filename)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f'checkpoint {filename} is not a complete safetensors file '
            f'({err})') from err


def model_state_dict(checkpoint: dict, filename: str,
                     revise_keys=((r'^module\.', ''), )
                     ) -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a checkpoint (``state_dict`` or the dict
    itself), keys revised as MMEngine does (DDP's ``module.`` stripped).

    Raises:
        CheckpointError: ``checkpoint`` is a gallery index or another dict
            that holds no state dict.
    """
    if GALLERY_INDEX_KEYS <= set(checkpoint):
        raise CheckpointError(
            f'{filename} is a gallery index (written by GalleryIndex.save '
            'or tools/retrieve.py --save-index), not a model checkpoint; '
            'pass it as --gallery, and the training checkpoint as '
            'CHECKPOINT')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f'{filename} is not a model checkpoint: no state dict of '
            f'tensors (top-level keys: {_listed(sorted(checkpoint))})')
    revised = OrderedDict()
    for key, value in state.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    revised._metadata = getattr(state, '_metadata', OrderedDict())
    return revised


def _listed(keys: List[str]) -> str:
    shown = ', '.join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return shown + (f' and {more} more' if more > 0 else '')


def fit_problems(model: nn.Module,
                 state_dict: Dict[str, torch.Tensor]) -> Dict[str, List[str]]:
    """What keeps ``state_dict`` from loading into ``model`` exactly:
    ``{'missing keys' | 'unexpected keys' | 'shape mismatches': keys}``,
    only the kinds that occur."""
    expected = model.state_dict()
    problems = {
        'missing keys': sorted(set(expected) - set(state_dict)),
        'unexpected keys': sorted(set(state_dict) - set(expected)),
        'shape mismatches': [
            k for k in sorted(expected)
            if k in state_dict and state_dict[k].shape != expected[k].shape
        ]
    }
    return {kind: keys for kind, keys in problems.items() if keys}


def _describe(problems: Dict[str, List[str]], model: nn.Module,
              state_dict: Dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    shapes = {
        k: f'{k} (checkpoint {tuple(state_dict[k].shape)}, model '
        f'{tuple(expected[k].shape)})'
        for k in problems.get('shape mismatches', [])
    }
    return '; '.join(
        f'{kind}: {_listed([shapes.get(k, k) for k in keys])}'
        for kind, keys in problems.items())


def check_fit(model: nn.Module, state_dict: Dict[str, torch.Tensor],
              filename: str,
              partial: Union[bool, Sequence[str]] = False) -> None:
    """Refuse a checkpoint that does not fit ``model`` (every rank decides
    the same, from the same file).

    Args:
        partial (bool | Sequence[str]): ``True`` loads what fits and logs
            the rest; a sequence of key prefixes (e.g. ``['id_head.']``)
            allows problems with those keys only.

    Raises:
        CheckpointError: listing the keys that do not fit.
    """
    problems = fit_problems(model, state_dict)
    if not isinstance(partial, bool):
        prefixes = tuple(partial)
        refused = {kind: [k for k in keys if not k.startswith(prefixes)]
                   for kind, keys in problems.items()}
        refused = {kind: keys for kind, keys in refused.items() if keys}
    else:
        refused = {} if partial else problems
    if refused:
        raise CheckpointError(
            f'checkpoint {filename} does not fit the model '
            f'({_describe(refused, model, state_dict)}); {PARTIAL_HINT}')
    if problems:
        print_log(f'partial load of {filename}: '
                  f'{_describe(problems, model, state_dict)}',
                  logger='current', level=logging.WARNING)


def load_model_weights(model: nn.Module,
                       filename: str,
                       partial: Union[bool, Sequence[str]] = False,
                       map_location='cpu') -> dict:
    """Read ``filename`` and load its weights into ``model``: exactly, or
    with ``partial`` the keys that fit (the rest logged). Returns the
    checkpoint."""
    checkpoint = read_checkpoint(filename, map_location)
    state_dict = model_state_dict(checkpoint, filename)
    check_fit(model, state_dict, filename, partial)
    load_into(model, state_dict)
    return checkpoint


def load_into(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> None:
    """Copy the keys of ``state_dict`` that fit ``model`` (those that do
    not were reported by :func:`check_fit`)."""
    expected = model.state_dict()
    fitting = OrderedDict(
        (k, v) for k, v in state_dict.items()
        if k in expected and v.shape == expected[k].shape)
    fitting._metadata = getattr(state_dict, '_metadata', OrderedDict())
    model.load_state_dict(fitting, strict=False)


def has_training_state(path: str) -> Tuple[bool, str]:
    """Whether ``path`` can resume training: a readable checkpoint with
    optimizer state and ``meta`` (epoch/iteration). Tensors are memory
    mapped, so a large file is not read. Returns (ok, reason if not)."""
    if not is_readable_checkpoint(path):
        return False, 'truncated or corrupt'
    allow_mmengine_checkpoint_globals()
    try:
        checkpoint = torch.load(path, map_location='cpu', mmap=True)
    except Exception as err:  # unreadable for any reason: not a candidate
        return False, f'unreadable ({type(err).__name__})'
    if not isinstance(checkpoint, dict) or 'meta' not in checkpoint:
        return False, 'not a training checkpoint'
    if 'optimizer' not in checkpoint:
        return False, 'no optimizer state (e.g. a best_*.pth)'
    return True, ''
