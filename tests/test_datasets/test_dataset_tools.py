"""tools/misc/check_dataset.py and tools/dataset_converters/*."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from gadms.datasets import RSTPReid, WebPerson

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SIZES = ['--train-ids', '4', '--val-ids', '2', '--test-ids', '2',
         '--images-per-identity', '2']


def _tool(*args: str, expect: int = 0) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == expect, result.stdout[-2000:] + \
        result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope='module')
def rstp_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('tools') / 'rstp')
    _tool('tools/dataset_converters/synth_person_to_benchmark.py', root,
          '--layout', 'rstpreid', *SIZES)
    return root


def test_converter_writes_a_loadable_benchmark(rstp_root):
    assert len(RSTPReid(data_root=rstp_root, split='val')) == 4
    assert len(RSTPReid(data_root=rstp_root, split='train')) == 16


def test_check_passes_a_good_folder(rstp_root, tmp_path):
    out = _tool('tools/misc/check_dataset.py', 'rstpreid', rstp_root,
                '--out', str(tmp_path / 'report.json'))
    assert 'OK: 0 errors' in out
    assert '| train | 4          | 8      | 16       |' in out
    report = json.load(open(tmp_path / 'report.json'))
    assert report['errors'] == {}
    assert len(report['warnings']['counts differ from published']) == 3


def test_check_lists_every_problem(rstp_root, tmp_path):
    root = tmp_path / 'broken'
    subprocess.run(['cp', '-r', rstp_root, str(root)], check=True)
    ann = root / 'data_captions.json'
    records = json.load(open(ann))
    del records[0]['captions']  # schema
    records[1]['captions'] = ['same words', 'same words']  # repeated
    records[2]['img_path'] = records[3]['img_path']  # referenced twice
    (root / 'imgs' / records[5]['img_path']).write_bytes(b'junk')
    (root / 'imgs' / records[6]['img_path']).unlink()
    ann.write_text(json.dumps(records))
    _tool('tools/misc/check_dataset.py', 'rstpreid', str(root), '--out',
          str(tmp_path / 'report.json'), expect=1)
    report = json.load(open(tmp_path / 'report.json'))
    assert {k: len(v) for k, v in report['errors'].items()} == {
        'schema': 1, 'image referenced twice': 1, 'undecodable image': 1,
        'missing image': 1
    }
    assert 'record 0 has no field "captions"' in report['errors']['schema'][0]
    assert 'record 6, field "img_path"' in report['errors'][
        'missing image'][0]
    assert report['warnings']['repeated caption'] == [
        "record 1: 'same words'"
    ]


@pytest.mark.parametrize('layout, ann_file', [
    ('webperson-parquet', 'data'),
    ('webperson-json', 'annotations.json'),
])
def test_subset_tool_writes_the_configured_subset(layout, ann_file,
                                                  tmp_path):
    corpus, out = str(tmp_path / 'corpus'), str(tmp_path / 'subset')
    _tool('tools/dataset_converters/synth_person_to_benchmark.py', corpus,
          '--layout', layout, '--rows-per-shard', '3', *SIZES)
    _tool('tools/dataset_converters/build_webperson_subset.py', corpus, out,
          '--ann-file', ann_file, '--num-images', '5', '--seed', '1')
    expected = WebPerson(data_root=corpus, ann_file=ann_file,
                         subset=dict(num_images=5, seed=1))
    written = WebPerson(data_root=out, ann_file=ann_file)
    assert len(written) == len(expected) == 10
    for idx in range(10):
        a, b = expected.get_data_info(idx), written.get_data_info(idx)
        assert a['captions'] == b['captions']
        assert a.get('img_bytes') == b.get('img_bytes')
        assert osp.realpath(a['img_path']).endswith(
            osp.basename(b['img_path']))
        assert osp.isfile(b['img_path']) or 'img_bytes' in b
    if layout == 'webperson-parquet':  # 8 rows in shards of 3
        assert 0 < len(written.corpus.files) <= 3
    report = _tool('tools/misc/check_dataset.py', 'webperson', out,
                   '--ann-file', ann_file)
    assert 'OK: 0 errors' in report
