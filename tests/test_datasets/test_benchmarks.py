"""The benchmark readers on SynthPerson written in each published format."""
import json
import os.path as osp
import shutil

import mmcv
import pytest
from mmengine.logging import MMLogger

from gadms.datasets import (CUHKPEDES, ICFGPEDES, RSTPReid, SynthPerson,
                            export_synth_person)

SMALL = dict(num_identities=dict(train=3, val=2, test=2),
             images_per_identity=2, captions_per_image=2)
# loader class, layout, annotation file, image-path field, raw id - pid
FORMATS = {
    'CUHKPEDES': (CUHKPEDES, 'cuhk-pedes', 'reid_raw.json', 'file_path', 1),
    'ICFGPEDES': (ICFGPEDES, 'icfg-pedes', 'ICFG-PEDES.json', 'file_path',
                  0),
    'RSTPReid': (RSTPReid, 'rstpreid', 'data_captions.json', 'img_path', 1),
}


@pytest.fixture(scope='module')
def written(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp('formats')
    return {
        name: export_synth_person(str(root / layout), layout, **SMALL)
        for name, (_, layout, _, _, _) in FORMATS.items()
    }


@pytest.fixture
def copy_of(written, tmp_path):
    """A writable copy of one written benchmark folder."""

    def copy(name: str) -> str:
        root = str(tmp_path / name)
        shutil.copytree(osp.dirname(written[name]), root)
        return root

    return copy


@pytest.mark.parametrize('name', list(FORMATS))
def test_reads_the_published_layout(name, written):
    loader, _, ann_name, _, id_offset = FORMATS[name]
    root = osp.dirname(written[name])
    assert osp.basename(written[name]) == ann_name
    for split in loader.SPLITS:
        synth = SynthPerson(split=split, **SMALL)
        dataset = loader(data_root=root, split=split)
        # train: a sample per caption; val/test: a sample per image
        per_image = 1 if split != 'train' else SMALL['captions_per_image']
        num_images = SMALL['num_identities'][split] * \
            SMALL['images_per_identity']
        assert len(dataset) == len(synth) == num_images * per_image
        for idx in range(len(dataset)):
            expected, info = synth.get_data_info(idx), dataset.get_data_info(
                idx)
            assert info['captions'] == expected['captions']
            assert info['img_path'] == osp.join(root, 'imgs',
                                                expected['img_path'])
            assert (mmcv.imread(info['img_path']) == expected['img']).all()
            if split == 'train':  # contiguous from 0 (SynthPerson's too)
                assert info['pid'] == expected['pid']
            else:  # the raw id of the annotation
                assert info['pid'] == expected['pid'] + id_offset
            assert info['benchmark'] == dataset.name and info['split'] == \
                split


def test_val_splits():
    assert CUHKPEDES.SPLITS == RSTPReid.SPLITS == ('train', 'val', 'test')
    assert ICFGPEDES.SPLITS == ('train', 'test')


def _rewrite(root: str, ann_name: str, edit) -> None:
    path = osp.join(root, ann_name)
    records = json.load(open(path))
    edit(records)
    with open(path, 'w') as f:
        json.dump(records, f)


def _set(index: int, field: str, value):

    def edit(records):
        records[index][field] = value

    return edit


def _drop(index: int, field: str):

    def edit(records):
        del records[index][field]

    return edit


@pytest.mark.parametrize('edit, message', [
    (_drop(3, 'captions'), 'record 3 has no field "captions"'),
    (_set(2, 'id', '3'), 'record 2 field "id" must be int'),
    (_set(1, 'captions', 'a man'), 'record 1 field "captions" must be list'),
    (_set(4, 'captions', []), r'record 4 \(.*\), field "captions"'),
    (_set(2, 'id', True), 'record 2 field "id" must be int, got True'),
    (_set(0, 'captions', ['a man', 7]), r'record 0 \(.*\), field '
     '"captions"'),
    (_set(5, 'split', 'dev'), "record 5 field \"split\" is 'dev'"),
])
@pytest.mark.parametrize('name', list(FORMATS))
def test_bad_records_name_file_record_and_field(name, edit, message,
                                                copy_of):
    loader, _, ann_name, _, _ = FORMATS[name]
    root = copy_of(name)
    _rewrite(root, ann_name, edit)
    with pytest.raises(ValueError, match=message) as error:
        loader(data_root=root, split='train')
    assert ann_name in str(error.value)


@pytest.mark.parametrize('name', list(FORMATS))
def test_missing_image_names_record_and_field(name, copy_of):
    loader, _, ann_name, field, _ = FORMATS[name]
    root = copy_of(name)
    records = json.load(open(osp.join(root, ann_name)))
    missing = records[1][field]
    shutil.move(osp.join(root, 'imgs', missing), str(osp.join(root, 'x')))
    with pytest.raises(FileNotFoundError,
                       match=f'{ann_name} record 1, field "{field}": image '
                       f'.*{missing} does not exist'):
        loader(data_root=root, split='train')


def test_missing_invalid_and_wrongly_shaped_annotation_files(copy_of):
    root = copy_of('CUHKPEDES')
    with pytest.raises(FileNotFoundError, match='other.json does not exist'):
        CUHKPEDES(data_root=root, ann_file='other.json')
    with open(osp.join(root, 'reid_raw.json'), 'w') as f:
        f.write('[{"split": ')
    with pytest.raises(ValueError, match='reid_raw.json is not valid JSON'):
        CUHKPEDES(data_root=root)
    with open(osp.join(root, 'reid_raw.json'), 'wb') as f:
        f.write('[{"captions": ["a man in a caf\u00e9"]}]'.encode('latin-1'))
    with pytest.raises(ValueError, match=r"reid_raw.json is not UTF-8 text "
                       r"\(byte b'\\xe9' at offset 30\)"):
        CUHKPEDES(data_root=root)
    with open(osp.join(root, 'reid_raw.json'), 'w') as f:
        json.dump({'split': 'train'}, f)
    with pytest.raises(ValueError, match='reid_raw.json: expected a list'):
        CUHKPEDES(data_root=root)


def test_unknown_split_argument(written):
    root = osp.dirname(written['ICFGPEDES'])
    with pytest.raises(ValueError, match="ICFGPEDES: unknown split 'val'"):
        ICFGPEDES(data_root=root, split='val')
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        CUHKPEDES(data_root=osp.dirname(written['CUHKPEDES']), split='dev')


@pytest.mark.parametrize('name, edit, message', [
    ('CUHKPEDES', _set(0, 'id', 5), 'ids must run from 1 without gaps'),
    ('ICFGPEDES', _set(0, 'id', 7), 'ids must run from 0 without gaps'),
])
def test_training_ids_must_be_contiguous(name, edit, message, copy_of):
    loader, _, ann_name, _, _ = FORMATS[name]
    root = copy_of(name)
    _rewrite(root, ann_name, edit)
    with pytest.raises(ValueError, match=message):
        loader(data_root=root, split='train')


def test_rstpreid_relabels_training_ids(copy_of):
    root = copy_of('RSTPReid')
    _rewrite(root, 'data_captions.json',
             lambda records: [r.update(id=1000 - r['id']) for r in records])
    train = RSTPReid(data_root=root, split='train')
    # raw ids 999, 998, 997 in file order become 2, 1, 0
    pids = [train.get_data_info(i)['pid'] for i in range(len(train))]
    assert pids == [2] * 4 + [1] * 4 + [0] * 4
    test = RSTPReid(data_root=root, split='test')
    assert test.get_data_info(0)['pid'] == 1000 - 6


def test_summary_table_shows_counts_and_published_figures(written, capsys):
    # a fresh current logger writes to the captured stdout
    MMLogger.get_instance('summary-table-test', log_level='INFO')
    CUHKPEDES(data_root=osp.dirname(written['CUHKPEDES']), split='val')
    captured = capsys.readouterr()
    rows = [line.split('|')[1:-1]
            for line in (captured.out + captured.err).splitlines()
            if line.startswith('|')]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert cells == [['split', 'identities', 'images', 'captions'],
                     ['val', '2', '4', '8'],
                     ['val (published)', '1000', '3078', '6158']]


@pytest.mark.parametrize('outside', ['../../outside.jpg', 'absolute'])
@pytest.mark.parametrize('name', list(FORMATS))
def test_image_paths_stay_in_the_image_folder(name, outside, copy_of,
                                              tmp_path):
    loader, _, ann_name, field, _ = FORMATS[name]
    root = copy_of(name)
    first = json.load(open(osp.join(root, ann_name)))[0][field]
    # a readable image outside the data root
    target = tmp_path / 'outside.jpg'
    shutil.copy(osp.join(root, 'imgs', first), target)
    path = str(target) if outside == 'absolute' else osp.relpath(
        target, osp.join(root, 'imgs'))
    assert outside == 'absolute' or path.startswith('..')
    _rewrite(root, ann_name, _set(1, field, path))
    with pytest.raises(ValueError,
                       match=f'{ann_name} record 1, field "{field}": image '
                       f"path '{path}' leaves the image folder"):
        loader(data_root=root, split='train')
    allowed = loader(data_root=root, split='train', allow_outside_root=True)
    paths = {allowed.get_data_info(i)['img_path']
             for i in range(len(allowed))}
    assert any(osp.realpath(p) == str(target) for p in paths)


def test_train_pids_relabel_option_for_custom_splits(copy_of):
    root = copy_of('CUHKPEDES')
    _rewrite(root, 'reid_raw.json',
             lambda records: [r.update(id=10 * r['id']) for r in records])
    with pytest.raises(ValueError, match="train_pids='relabel'"):
        CUHKPEDES(data_root=root, split='train')
    train = CUHKPEDES(data_root=root, split='train', train_pids='relabel')
    # raw ids 10, 20, 30 become 0, 1, 2
    pids = [train.get_data_info(i)['pid'] for i in range(len(train))]
    assert pids == [0] * 4 + [1] * 4 + [2] * 4
    assert CUHKPEDES(data_root=root, split='test',
                     train_pids='relabel').get_data_info(0)['pid'] == 60
    with pytest.raises(ValueError, match="train_pids must be one of"):
        CUHKPEDES(data_root=root, train_pids='shift')


def _records(root: str, ann_name: str) -> list:
    return json.load(open(osp.join(root, ann_name)))


@pytest.mark.parametrize('name', list(FORMATS))
def test_empty_split_names_the_file_and_split(name, copy_of):
    loader, _, ann_name, _, _ = FORMATS[name]
    root = copy_of(name)
    _rewrite(root, ann_name, lambda records: records.__setitem__(
        slice(None), [r for r in records if r['split'] != 'test']))
    with pytest.raises(ValueError, match=rf"{ann_name}: the 'test' split of "
                       rf'{loader.NAME} has no records'):
        loader(data_root=root, split='test')
    assert len(loader(data_root=root, split='train')) > 0


@pytest.mark.parametrize('name', list(FORMATS))
def test_captions_that_tokenise_to_nothing_are_dropped(name, copy_of,
                                                       caplog_mm):
    """'&nbsp;', '\\x00' and '' become SOT + EOT alone: dropped with a
    counted warning (an image left with none goes too), or refused with
    strict_captions."""
    loader, _, ann_name, _, _ = FORMATS[name]
    root = copy_of(name)
    records = _records(root, ann_name)
    tests = [i for i, r in enumerate(records) if r['split'] == 'test']
    kept_caption = records[tests[0]]['captions'][0]

    def edit(records):
        records[tests[0]]['captions'][1] = '&nbsp;'
        records[tests[1]]['captions'] = ['\x00', '']

    _rewrite(root, ann_name, edit)
    dataset = loader(data_root=root, split='test')
    assert len(dataset) == len(tests) - 1
    assert dataset.get_data_info(0)['captions'] == [kept_caption]
    assert all(dataset.get_data_info(i)['img_path'] != osp.join(
        root, 'imgs', records[tests[1]][FORMATS[name][3]])
        for i in range(len(dataset)))
    assert ('dropped 3 captions that tokenise to nothing and 1 images left '
            'without captions (e.g. ') in caplog_mm.text
    assert f"{ann_name} record {tests[0]}: '&nbsp;'" in caplog_mm.text
    with pytest.raises(ValueError, match=r'^3 captions tokenise to nothing '
                       rf"\(strict_captions\): .*{ann_name} record "
                       rf"{tests[1]}: '\\x00'"):
        loader(data_root=root, split='test', strict_captions=True)


@pytest.mark.parametrize('name', list(FORMATS))
def test_an_image_named_by_two_records_is_refused(name, copy_of):
    loader, _, ann_name, path_field, _ = FORMATS[name]
    root = copy_of(name)
    records = _records(root, ann_name)
    tests = [i for i, r in enumerate(records) if r['split'] == 'test']
    _rewrite(root, ann_name, _set(tests[1], path_field,
                                  records[tests[0]][path_field]))
    path = osp.normpath(records[tests[0]][path_field])
    for split in ('train', 'test'):  # whichever split is read
        with pytest.raises(ValueError, match=rf'{ann_name}: image {path} is '
                           rf'named by records \[{tests[0]}, {tests[1]}\]'):
            loader(data_root=root, split=split)
