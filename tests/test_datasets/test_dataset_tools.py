"""tools/misc/check_dataset.py and tools/dataset_converters/*."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from common import REPO_ROOT, run_tool, run_tool_main, tool_module

from gadms.cli import load_config, read_tool_config, register_all_modules
from gadms.datasets import CUHKPEDES, RSTPReid, WebPerson, export_synth_person
from gadms.registry import DATASETS

SIZES = ['--train-ids', '4', '--val-ids', '2', '--test-ids', '2',
         '--images-per-identity', '2']


def _tool(*args: str, expect: int = 0, cwd: str = REPO_ROOT) -> str:
    result = run_tool(*args, cwd=cwd)
    assert result.returncode == expect, result.stdout[-2000:] + \
        result.stderr[-2000:]
    return result.stdout


def _write_benchmark(tmp_path_factory, layout: str) -> str:
    """A SynthPerson folder in a benchmark's ``layout``, written by the
    converter tool."""
    root = str(tmp_path_factory.mktemp('tools') / layout)
    run_tool_main('tools/dataset_converters/synth_person_to_benchmark.py',
                  root, '--layout', layout, *SIZES)
    return root


@pytest.fixture(scope='module')
def rstp_root(tmp_path_factory) -> str:
    return _write_benchmark(tmp_path_factory, 'rstpreid')


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
    run_tool_main('tools/dataset_converters/synth_person_to_benchmark.py',
                  corpus, '--layout', layout, '--rows-per-shard', '3',
                  *SIZES)
    run_tool_main('tools/dataset_converters/build_webperson_subset.py',
                  corpus, out, '--ann-file', ann_file, '--num-images', '5',
                  '--seed', '1')
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


@pytest.fixture(scope='module')
def cuhk_root(tmp_path_factory) -> str:
    return _write_benchmark(tmp_path_factory, 'cuhk-pedes')


def test_check_refuses_what_the_reader_refuses(cuhk_root, tmp_path):
    """Paths leaving the data root and training ids that do not run 1..N:
    the checker reports exactly the reader's errors, and its options are
    the reader's options."""
    root = tmp_path / 'custom'
    subprocess.run(['cp', '-r', cuhk_root, str(root)], check=True)
    ann = root / 'reid_raw.json'
    records = json.load(open(ann))
    reader_errors = []
    for record in records:
        record['id'] *= 10  # a custom split: ids 10, 20, ...
    ann.write_text(json.dumps(records))
    with pytest.raises(ValueError) as raised:
        CUHKPEDES(data_root=str(root))
    reader_errors.append(str(raised.value))
    records[2]['file_path'] = '../../secret.jpg'
    ann.write_text(json.dumps(records))
    with pytest.raises(ValueError) as raised:
        CUHKPEDES(data_root=str(root), train_pids='relabel')
    reader_errors.append(str(raised.value))
    _tool('tools/misc/check_dataset.py', 'cuhk-pedes', str(root), '--out',
          str(tmp_path / 'report.json'), '--no-decode', expect=1)
    errors = json.load(open(tmp_path / 'report.json'))['errors']
    assert errors['schema'] == [reader_errors[1]]
    assert "image path '../../secret.jpg' leaves" in reader_errors[1]
    assert errors['training ids'] == [reader_errors[0]]
    # with the path back inside, the reader's option passes both
    records[2]['file_path'] = json.load(open(osp.join(
        cuhk_root, 'reid_raw.json')))[2]['file_path']
    ann.write_text(json.dumps(records))
    CUHKPEDES(data_root=str(root), train_pids='relabel')
    out = _tool('tools/misc/check_dataset.py', 'cuhk-pedes', str(root),
                '--train-pids', 'relabel', '--no-decode')
    assert 'training ids' not in out and '0 errors' in out


def test_webperson_json_paths_stay_in_the_image_folder(tmp_path):
    root = tmp_path / 'web'
    (root / 'images').mkdir(parents=True)
    entries = [{'a.jpg': dict(caption1='a man', caption2='a person')},
               {'/etc/hostname': dict(caption1='x y', caption2='y z')}]
    (root / 'annotations.json').write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=r"annotations.json entry 1: image "
                       r"path '/etc/hostname' leaves the image folder"):
        WebPerson(data_root=str(root))
    dataset = WebPerson(data_root=str(root), allow_outside_root=True)
    assert dataset.get_data_info(0)['img_path'] == '/etc/hostname'
    # inside paths with a '..' segment are fine
    entries[1] = {'sub/../b.jpg': dict(caption1='x y', caption2='y z')}
    (root / 'annotations.json').write_text(json.dumps(entries))
    assert len(WebPerson(data_root=str(root))) == 4


def test_checker_and_reader_agree_on_shared_images_and_bool_ids(cuhk_root,
                                                                 tmp_path):
    root = tmp_path / 'shared'
    subprocess.run(['cp', '-r', cuhk_root, str(root)], check=True)
    ann = root / 'reid_raw.json'
    records = json.load(open(ann))
    tests = [i for i, r in enumerate(records) if r['split'] == 'test']
    records[tests[1]]['file_path'] = records[tests[0]]['file_path']
    records[tests[2]]['id'] = True
    ann.write_text(json.dumps(records))
    errors = []
    for edit in range(2):  # the bool id first, then the shared image
        with pytest.raises(ValueError) as raised:
            CUHKPEDES(data_root=str(root), split='test')
        errors.append(str(raised.value))
        records[tests[2]]['id'] = 7
        ann.write_text(json.dumps(records))
    records[tests[2]]['id'] = True
    ann.write_text(json.dumps(records))
    _tool('tools/misc/check_dataset.py', 'cuhk-pedes', str(root), '--out',
          str(tmp_path / 'report.json'), '--no-decode', expect=1)
    report = json.load(open(tmp_path / 'report.json'))['errors']
    assert report['schema'] == [errors[0]]
    assert errors[0].endswith(f'record {tests[2]} field "id" must be int, '
                              'got True')
    shared, = report['image referenced twice']
    assert errors[1].startswith(shared + '; each record must name its own')


def test_checker_reads_relative_roots_and_counts_empty_captions(
        cuhk_root, tmp_path):
    """The docs' commands (`check_dataset.py webperson data/WebPerson`) run
    from the folder the relative root is relative to, for both WebPerson
    forms and a benchmark; captions that tokenise to nothing are warnings
    that say what the reader does with them."""
    data = tmp_path / 'data'
    data.mkdir()
    export_synth_person(str(data / 'WebPerson'), 'webperson-parquet',
                        num_identities=dict(train=3, val=1, test=1),
                        images_per_identity=1)
    export_synth_person(str(data / 'WebPersonJSON'), 'webperson-json',
                        num_identities=dict(train=3, val=1, test=1),
                        images_per_identity=1)
    subprocess.run(['cp', '-r', cuhk_root, str(data / 'CUHK-PEDES')],
                   check=True)
    ann = data / 'CUHK-PEDES' / 'reid_raw.json'
    records = json.load(open(ann))
    records[4]['captions'][0] = '&nbsp;'
    ann.write_text(json.dumps(records))
    entries = json.load(open(data / 'WebPersonJSON' / 'annotations.json'))
    (path, captions), = entries[1].items()
    captions['caption2'] = '\x00'
    (data / 'WebPersonJSON' / 'annotations.json').write_text(
        json.dumps(entries))
    checker = osp.join(REPO_ROOT, 'tools/misc/check_dataset.py')
    out = _tool(checker, 'webperson', 'data/WebPerson', cwd=str(tmp_path))
    assert 'OK: 0 errors' in out
    out = _tool(checker, 'webperson', 'data/WebPersonJSON', '--ann-file',
                'annotations.json', '--out', 'json.json', cwd=str(tmp_path))
    assert 'OK: 0 errors' in out
    warned = json.load(open(tmp_path / 'json.json'))['warnings']
    assert warned['caption that tokenises to nothing'] == [
        f"data/WebPersonJSON/annotations.json entry 1 ({path}) field "
        "'caption2': '\\x00' (its image is dropped by the reader)"]
    _tool(checker, 'cuhk-pedes', 'data/CUHK-PEDES', '--out', 'cuhk.json',
          cwd=str(tmp_path))
    warned = json.load(open(tmp_path / 'cuhk.json'))['warnings']
    assert warned['caption that tokenises to nothing'] == [
        "data/CUHK-PEDES/reid_raw.json record 4: '&nbsp;' (dropped by the "
        'reader)']


def test_check_prints_no_empty_errors_table(rstp_root):
    out = _tool('tools/misc/check_dataset.py', 'rstpreid', rstp_root)
    assert '+errors' not in out and '+warnings' in out


@pytest.fixture(scope='module')
def irra_icfg_root(tmp_path_factory) -> str:
    """ICFG-PEDES in IRRA's naming: ICFG_PEDES.json."""
    root = _write_benchmark(tmp_path_factory, 'icfg-pedes')
    os.rename(osp.join(root, 'ICFG-PEDES.json'),
              osp.join(root, 'ICFG_PEDES.json'))
    return root


def test_check_suggests_the_annotation_file_in_the_folder(irra_icfg_root):
    out = _tool('tools/misc/check_dataset.py', 'icfg-pedes', irra_icfg_root,
                expect=1)
    assert 'the folder holds ICFG_PEDES.json: pass --ann-file ' \
        'ICFG_PEDES.json' in out
    out = _tool('tools/misc/check_dataset.py', 'icfg-pedes', irra_icfg_root,
                '--ann-file', 'ICFG_PEDES.json')
    assert 'OK: 0 errors' in out


@pytest.mark.parametrize('tool', [
    'tools/train.py', 'tools/test.py', 'tools/retrieve.py',
    'tools/analysis_tools/visualize_token_scores.py'])
def test_every_dataset_tool_takes_data_root_and_ann_file(
        tool, irra_icfg_root, monkeypatch):
    register_all_modules()
    config = osp.join(REPO_ROOT,
                      'configs/gadms/gadms_tiny_1xb64_icfg-pedes.py')
    extra = {'tools/train.py': [], 'tools/test.py': ['model.pth'],
             'tools/retrieve.py': ['model.pth', '--split', 'test',
                                   '--query', 'a man'],
             'tools/analysis_tools/visualize_token_scores.py': ['model.pth']}
    module = tool_module(tool)
    for ann_file in (None, 'ICFG_PEDES.json'):
        options = ['--ann-file', ann_file] if ann_file else []
        monkeypatch.setattr(sys, 'argv', [tool, config, *extra[tool],
                                          '--data-root', irra_icfg_root,
                                          *options])
        args = module.parse_args()
        cfg = load_config(args) if tool in (
            'tools/train.py', 'tools/test.py') else read_tool_config(args)
        dataset = dict(cfg.test_dataloader.dataset, pipeline=[])
        if ann_file is None:  # the reader's default name is not there
            with pytest.raises(FileNotFoundError, match='ICFG-PEDES.json'):
                DATASETS.build(dataset).full_init()
        else:
            assert len(DATASETS.build(dataset)) > 0
