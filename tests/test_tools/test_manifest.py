"""tools/misc/manifest.py: a data folder's files recorded, then checked."""
import hashlib

import pytest
from common import run_tool_main

TOOL = 'tools/misc/manifest.py'


def _folder(tmp_path):
    data = tmp_path / 'data'
    (data / 'imgs').mkdir(parents=True)
    (data / 'reid_raw.json').write_text('[]')
    (data / 'imgs' / 'a.jpg').write_bytes(b'image a')
    return data


def test_write_lists_every_file_with_its_sha256(tmp_path):
    data = _folder(tmp_path)
    manifest = tmp_path / 'data.sha256'
    run_tool_main(TOOL, 'write', str(data), str(manifest))
    assert manifest.read_text() == (
        f'{hashlib.sha256(b"image a").hexdigest()}  imgs/a.jpg\n'
        f'{hashlib.sha256(b"[]").hexdigest()}  reid_raw.json\n')


def test_verify_names_what_differs(tmp_path, capsys):
    data = _folder(tmp_path)
    manifest = tmp_path / 'data.sha256'
    run_tool_main(TOOL, 'write', str(data), str(manifest))
    with pytest.raises(SystemExit) as ok:
        run_tool_main(TOOL, 'verify', str(data), str(manifest))
    assert ok.value.code == 0 and 'OK' in capsys.readouterr().out
    (data / 'imgs' / 'a.jpg').write_bytes(b'image A')
    (data / 'reid_raw.json').unlink()
    (data / 'imgs' / 'b.jpg').write_bytes(b'new')
    with pytest.raises(SystemExit) as bad:
        run_tool_main(TOOL, 'verify', str(data), str(manifest))
    printed = capsys.readouterr().out
    assert bad.value.code == 1
    assert 'missing: reid_raw.json' in printed
    assert 'changed: imgs/a.jpg' in printed
    assert 'not in the manifest: imgs/b.jpg' in printed
    assert '3 problems' in printed


def test_a_bad_manifest_line_is_named(tmp_path):
    data = _folder(tmp_path)
    manifest = tmp_path / 'data.sha256'
    manifest.write_text('abc  imgs/a.jpg\n')
    with pytest.raises(SystemExit, match='data.sha256 line 1: expected'):
        run_tool_main(TOOL, 'verify', str(data), str(manifest))
