"""TorchScript archives (OpenAI CLIP releases) are read without running
their code."""
import os
import pickle
import zipfile

import pytest
import torch
from torch import nn

from gadms.models.backbones.clip_weights import read_clip_state_dict
from gadms.models.backbones.torchscript_tensors import \
    read_torchscript_tensors


class Tower(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        self.blocks = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
        self.register_buffer('ids', torch.arange(5))
        self.register_buffer('mask', torch.ones(2, 2), persistent=False)
        # fp16 and a transposed (non-contiguous) parameter
        self.half_scale = nn.Parameter(torch.randn(2, 3).half())
        self.transposed = nn.Parameter(torch.randn(3, 4).t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.proj(x)) + self.mask.sum()


def _archive(tmp_path) -> str:
    torch.manual_seed(0)
    traced = torch.jit.trace(Tower(), torch.randn(1, 4), check_trace=False)
    path = str(tmp_path / 'tower.pt')
    torch.jit.save(traced, path)
    return path


def test_tensors_equal_what_torchscript_loads(tmp_path):
    path = _archive(tmp_path)
    reference = torch.jit.load(path).state_dict()  # our own archive
    tensors = read_torchscript_tensors(path)
    assert set(tensors) == set(reference) | {'mask'}
    for key, value in reference.items():
        assert tensors[key].dtype == value.dtype, key
        assert torch.equal(tensors[key], value), key
    assert tensors['transposed'].shape == (4, 3)


def test_clip_reader_never_runs_the_archive(tmp_path, monkeypatch):
    path = _archive(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError('torch.jit.load runs the archive code')

    monkeypatch.setattr(torch.jit, 'load', refuse)
    tensors = read_clip_state_dict(path)
    assert tensors['half_scale'].dtype == torch.float32  # cast to fp32
    assert tensors['proj.weight'].shape == (3, 4)


class _Payload:
    """Pickles as a call of os.system (what a hostile archive could hold)."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f'touch {self.sentinel}', )


def test_hostile_archive_is_refused_without_running(tmp_path):
    sentinel = tmp_path / 'ran'
    path = str(tmp_path / 'hostile.pt')
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('hostile/data.pkl',
                         pickle.dumps(_Payload(str(sentinel)), protocol=2))
        archive.writestr('hostile/constants.pkl', pickle.dumps(()))
    with pytest.raises(ValueError,
                       match=r'hostile\.pt.*names (posix|os)\.system'):
        read_clip_state_dict(path)
    assert not sentinel.exists()
