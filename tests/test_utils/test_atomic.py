"""Files gadms writes with torch.save appear whole or not at all."""
import os

import pytest
import torch

from gadms.apis.inference import GalleryIndex


def _index(value: float) -> GalleryIndex:
    return GalleryIndex(features=torch.full((3, 4), value),
                        paths=['a.png', 'b.png', 'c.png'], pids=None,
                        fingerprint='f' * 16)


def test_failed_index_save_keeps_the_previous_index(tmp_path, monkeypatch):
    path = str(tmp_path / 'gallery.pth')
    _index(1.0).save(path)
    original = torch.save

    def torn_save(obj, target):
        with open(target, 'wb') as f:
            f.write(b'PK\x03\x04 half an archive')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', torn_save)
    with pytest.raises(OSError, match='disk full'):
        _index(2.0).save(path)
    monkeypatch.setattr(torch, 'save', original)
    assert torch.equal(GalleryIndex.load(path).features,
                       torch.full((3, 4), 1.0))
    assert os.listdir(tmp_path) == ['gallery.pth']  # no .part left behind
    _index(3.0).save(path)
    assert torch.equal(GalleryIndex.load(path).features,
                       torch.full((3, 4), 3.0))
