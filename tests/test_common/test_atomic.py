"""Every file gadms writes appears whole or not at all."""
import ast
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from common import REPO_ROOT

from gadms.apis.gallery import GalleryIndex
from gadms.common.atomic import (atomic_folder, atomic_torch_save,
                                 atomic_write, parquet_stream, write_bytes,
                                 write_image, write_json, write_parquet)


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


# each kind of file gadms writes: (name, writer(path, version)); the
# version (1 or 2) is readable back by `read`
def _write_text(path, version):
    with atomic_write(path) as f:
        f.write(f'version {version}\n')


def _write_image(path, version):
    write_image(path, np.full((4, 3, 3), 10 * version, np.uint8))


def _write_parquet(path, version):
    write_parquet(pa.table(dict(version=[version])), path)


def _stream_parquet(path, version):
    """Two row groups appended one after the other."""
    with parquet_stream(path, pa.schema([('version', pa.int64())])) as add:
        add(pa.table(dict(version=[version])))
        add(pa.table(dict(version=[version * 10])))


KINDS = {
    'text': ('list.txt', _write_text,
             lambda p: open(p, encoding='utf-8').read()),
    'json': ('report.json', lambda p, v: write_json(p, dict(version=v)),
             lambda p: json.load(open(p, encoding='utf-8'))),
    'bytes': ('crop.bin', lambda p, v: write_bytes(p, bytes([v]) * 5),
              lambda p: open(p, 'rb').read()),
    'image': ('picture.png', _write_image,
              lambda p: cv2.imread(p)[0, 0, 0]),
    'parquet': ('shard.parquet', _write_parquet,
                lambda p: pq.read_table(p)['version'].to_pylist()),
    'parquet stream': ('images.parquet', _stream_parquet,
                       lambda p: pq.read_table(p)['version'].to_pylist()),
    'torch': ('weights.pth',
              lambda p, v: atomic_torch_save(dict(w=torch.tensor(v)), p),
              lambda p: torch.load(p)['w'].item()),
}


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_a_failed_rename_keeps_the_old_file(kind, tmp_path, monkeypatch):
    name, write, read = KINDS[kind]
    path = str(tmp_path / name)
    write(path, 1)
    before = read(path)

    def failing_replace(source, target):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', failing_replace)
    with pytest.raises(OSError, match='No space left'):
        write(path, 2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [name]  # the .part file is removed
    after = read(path)
    assert (after == before).all() if isinstance(after, np.ndarray) \
        else after == before
    write(path, 2)
    assert read(path) != before


def test_an_error_inside_the_block_keeps_the_old_file(tmp_path):
    path = str(tmp_path / 'list.txt')
    _write_text(path, 1)
    with pytest.raises(RuntimeError, match='half-way'):
        with atomic_write(path) as f:
            f.write('half of version 2')
            raise RuntimeError('half-way')
    assert open(path, encoding='utf-8').read() == 'version 1\n'
    assert os.listdir(tmp_path) == ['list.txt']


# a writer killed (SIGKILL) in the middle of its file
KILLED_WRITER = '''
import os, sys, time
from gadms.common.atomic import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write('half of version 2')
    f.flush()
    open(sys.argv[2], 'w').close()  # tell the test we are half-way
    time.sleep(60)
'''


def test_a_killed_writer_leaves_the_old_file(tmp_path):
    path, half_way = str(tmp_path / 'list.txt'), str(tmp_path / 'half')
    _write_text(path, 1)
    writer = subprocess.Popen([sys.executable, '-c', KILLED_WRITER, path,
                               half_way], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while not os.path.exists(half_way) and time.monotonic() < deadline:
        assert writer.poll() is None, 'the writer ended early'
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert open(path, encoding='utf-8').read() == 'version 1\n'
    assert open(path + '.part', encoding='utf-8').read() == (
        'half of version 2')


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    folder = str(tmp_path / 'listing')
    with atomic_folder(folder) as part:
        write_bytes(os.path.join(part, 'a'), b'1')
    with pytest.raises(RuntimeError):
        with atomic_folder(folder) as part:
            write_bytes(os.path.join(part, 'b'), b'2')
            raise RuntimeError('killed half-way')
    assert os.listdir(folder) == ['a']
    assert sorted(os.listdir(tmp_path)) == ['listing']
    with atomic_folder(folder) as part:
        write_bytes(os.path.join(part, 'b'), b'2')
    assert os.listdir(folder) == ['b']
    assert sorted(os.listdir(tmp_path)) == ['listing']


def test_only_whole_files_are_written():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_write('x', 'a'):
            pass


# calls that write a file in place; in gadms and tools/ only
# gadms/common/atomic.py may make them
IN_PLACE_WRITES = {'write_table', 'imwrite', 'write_text', 'write_bytes',
                   'savefig', 'to_parquet', 'tofile'}
IN_PLACE_MODULE_WRITES = {('torch', 'save'), ('np', 'save'),
                          ('numpy', 'save'), ('json', 'dump')}
ALLOWED = {osp.join('gadms', 'common', 'atomic.py')}


def in_place_writes(source: str) -> list:
    """``(line, call)`` of each call in ``source`` that writes a file in
    place: ``open`` in a writing mode, and the writers above."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == 'open':
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == 'mode'), None)
            if mode is not None and not (isinstance(mode, ast.Constant) and
                                         set(mode.value) <= set('rbt')):
                found.append((node.lineno, ast.unparse(func)))
        elif isinstance(func, ast.Attribute) and (
                func.attr in IN_PLACE_WRITES or (
                    isinstance(func.value, ast.Name) and
                    (func.value.id, func.attr) in IN_PLACE_MODULE_WRITES)):
            found.append((node.lineno, ast.unparse(func)))
    return sorted(found)


def test_every_file_is_written_through_atomic():
    found = []
    for top in ('gadms', 'tools'):
        for folder, _, files in os.walk(osp.join(REPO_ROOT, top)):
            for name in files:
                path = osp.join(folder, name)
                relative = osp.relpath(path, REPO_ROOT)
                if not name.endswith('.py') or relative in ALLOWED or \
                        relative.startswith(osp.join('gadms', 'testing')):
                    continue
                with open(path, encoding='utf-8') as f:
                    found += [f'{relative}:{line} {call}'
                              for line, call in in_place_writes(f.read())]
    assert found == []


def test_the_scan_finds_in_place_writes():
    source = ("with open(p, 'w') as f: pass\n"
              "open(p, mode='ab')\n"
              "open(p)\n"
              "open(p, 'rb')\n"
              "pq.write_table(t, p)\n"
              "torch.save(x, p)\n"
              "index.save(p)\n"
              "json.dump(x, f)\n"
              "json.dumps(x)\n"
              "cv2.imwrite(p, img)\n")
    assert in_place_writes(source) == [
        (1, 'open'), (2, 'open'), (5, 'pq.write_table'), (6, 'torch.save'),
        (8, 'json.dump'), (10, 'cv2.imwrite')]


def test_a_streamed_parquet_file_appears_when_its_block_ends(tmp_path):
    """Row groups appended to a parquet stream are not visible under the
    file's name until the block ends; an error half-way leaves nothing."""
    path = str(tmp_path / 'images.parquet')
    schema = pa.schema([('version', pa.int64())])
    with pytest.raises(RuntimeError, match='half-way'):
        with parquet_stream(path, schema) as append:
            append(pa.table(dict(version=[1])))
            assert not osp.exists(path)
            raise RuntimeError('half-way')
    assert os.listdir(tmp_path) == []
    with parquet_stream(path, schema) as append:
        for version in range(3):
            append(pa.table(dict(version=[version])))
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    assert pq.read_table(path)['version'].to_pylist() == [0, 1, 2]
    with parquet_stream(path, schema):
        pass
    assert pq.read_table(path).num_rows == 0


def test_a_folder_can_be_built_elsewhere_on_the_same_disk(tmp_path):
    """With ``part``, nothing appears beside the target until it is whole
    (readers that list the target's parent see no temporary folder)."""
    listed, work = tmp_path / 'images', tmp_path / 'work'
    listed.mkdir()
    with atomic_folder(str(listed / 'bucket=1'),
                       part=str(work / 'bucket=1')) as part:
        write_bytes(os.path.join(part, 'a'), b'1')
        assert os.listdir(listed) == [] and part == str(work / 'bucket=1')
    assert os.listdir(listed) == ['bucket=1']
    assert os.listdir(listed / 'bucket=1') == ['a']
    assert os.listdir(work) == []
