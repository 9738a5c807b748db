"""Read CLIP weights from local files and fit them to a gadms backbone.

Accepted files: OpenAI CLIP releases (TorchScript archives such as
``ViT-B-16.pt``, read without running their code, or their plain state
dicts), open_clip checkpoints (a state
dict, optionally under ``state_dict`` and with a ``module.`` prefix from DDP)
and ``.safetensors`` files. All use the same key layout (``visual.*``,
``transformer.*``, ``token_embedding.weight`` ...). Tensors are cast to
fp32 (OpenAI ships fp16).
"""
import math
import os.path as osp
import pickle
import zipfile
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .torchscript_tensors import read_torchscript_tensors

# Entries of OpenAI TorchScript archives that are not parameters.
_JIT_ONLY_KEYS = ('input_resolution', 'context_length', 'vocab_size')


def _is_torchscript_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith('constants.pkl')
                   for name in archive.namelist())


def _unwrap_state_dict(checkpoint, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError(f'{path}: expected a (non-empty) state dict of '
                         f'tensors, got {type(checkpoint).__name__}')
    if all(key.startswith('module.') for key in checkpoint):
        checkpoint = {key[len('module.'):]: v for key, v in checkpoint.items()}
    return checkpoint


def read_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Load the CLIP parameters stored in ``path`` as fp32 tensors.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is neither a TorchScript archive, a safetensors
            file, nor a tensors-only ``torch.save`` file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CLIP weight file {path} does not exist')
    if _is_torchscript_archive(path):
        # tensors only: torch.jit.load would run the archive's code
        state_dict = read_torchscript_tensors(path)
        for key in _JIT_ONLY_KEYS:
            state_dict.pop(key, None)
    elif path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state_dict = load_file(path, device='cpu')
    else:
        try:
            checkpoint = torch.load(path, map_location='cpu',
                                    weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
            raise ValueError(
                f'{path}: not a readable weights-only checkpoint '
                f'({type(err).__name__}: {str(err).splitlines()[0]})'
            ) from err
        state_dict = _unwrap_state_dict(checkpoint, path)
    return {
        key: value.float() if value.is_floating_point() else value
        for key, value in state_dict.items()
    }


def resize_pos_embed(pos_embed: torch.Tensor,
                     new_grid: Tuple[int, int],
                     old_grid: Optional[Tuple[int, int]] = None,
                     mode: str = 'bilinear') -> torch.Tensor:
    """Resize a ViT position embedding to a new patch grid.

    The class position (row 0) is kept as is; the grid rows are reshaped to
    ``old_grid``, interpolated to ``new_grid`` (``align_corners=False``) and
    flattened row-major again.

    Args:
        pos_embed (Tensor): ``[1 + h * w, C]``.
        new_grid (tuple[int, int]): Target ``(rows, cols)``.
        old_grid (tuple[int, int], optional): Source ``(rows, cols)``;
            defaults to the square grid the row count implies.
        mode (str): ``F.interpolate`` mode. Defaults to ``'bilinear'`` (the
            GA-DMS release).

    Returns:
        Tensor: ``[1 + rows * cols, C]``.
    """
    cls_pos, grid_pos = pos_embed[:1], pos_embed[1:]
    if old_grid is None:
        side = math.isqrt(grid_pos.shape[0])
        if side * side != grid_pos.shape[0]:
            raise ValueError(f'cannot infer the grid of {grid_pos.shape[0]} '
                             'position rows; pass old_grid')
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != grid_pos.shape[0]:
        raise ValueError(f'old_grid {old_grid} does not match '
                         f'{grid_pos.shape[0]} position rows')
    channels = grid_pos.shape[1]
    grid_pos = grid_pos.reshape(1, *old_grid, channels).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(
        grid_pos.float(), size=tuple(new_grid), mode=mode,
        align_corners=False).to(pos_embed.dtype)
    grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(-1, channels)
    return torch.cat([cls_pos, grid_pos])


def load_clip_weights(model: nn.Module,
                      path: str,
                      interpolation: str = 'bilinear') -> None:
    """Load a CLIP weight file into an open_clip ``CLIP`` model, strictly.

    The image position embedding is resized to the model's patch grid when
    the file was trained at another resolution.

    Raises:
        ValueError: naming the file and every missing, unexpected or
            wrongly shaped key.
    """
    state_dict = read_clip_state_dict(path)
    expected = model.state_dict()
    # TorchScript archives also store non-persistent buffers (attn_mask);
    # the model rebuilds those itself.
    for name, _ in model.named_buffers():
        if name not in expected:
            state_dict.pop(name, None)
    key = 'visual.positional_embedding'
    if key in state_dict and key in expected and \
            state_dict[key].shape != expected[key].shape:
        state_dict[key] = resize_pos_embed(
            state_dict[key], model.visual.grid_size, mode=interpolation)
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f'{k}: file {tuple(state_dict[k].shape)} vs model '
        f'{tuple(expected[k].shape)}' for k in sorted(expected)
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    problems = [(name, keys) for name, keys in (
        ('missing keys', missing), ('unexpected keys', unexpected),
        ('shape mismatches', mismatched)) if keys]
    if problems:
        details = '; '.join(f'{name}: {keys}' for name, keys in problems)
        raise ValueError(f'{path} does not fit the CLIP backbone: {details}')
    model.load_state_dict(state_dict)
