import json

import pytest

from gadms.datasets import CUHKPEDES, ICFGPEDES, RSTPReid, WebPerson


def _write(tmp_path, records) -> str:
    (tmp_path / 'reid_raw.json').write_text(json.dumps(records))
    return str(tmp_path)


def _record(split='train', pid=1, path='a/1.jpg', captions=('a man', )):
    return dict(split=split, id=pid, file_path=path, captions=list(captions),
                processed_tokens=[])


def test_pid_conventions_and_sample_layout(tmp_path):
    root = _write(tmp_path, [
        _record('train', 1, 'a/1.jpg', ['x', 'y']),
        _record('train', 2, 'a/2.jpg', ['z']),
        _record('test', 7, 'b/1.jpg', ['p', 'q', 'r']),
        _record('val', 5, 'c/1.jpg'),
    ])
    train = CUHKPEDES(data_root=root, split='train')
    assert [train.get_data_info(i)['pid'] for i in range(3)] == [0, 0, 1]
    assert [train.get_data_info(i)['captions'] for i in range(3)] == [
        ['x'], ['y'], ['z']
    ]
    assert train.get_data_info(0)['img_path'].endswith('imgs/a/1.jpg')
    test = CUHKPEDES(data_root=root, split='test')
    assert len(test) == 1 and test.test_mode
    assert test.get_data_info(0)['pid'] == 7
    assert test.get_data_info(0)['captions'] == ['p', 'q', 'r']


@pytest.mark.parametrize('records, message', [
    ([_record(captions=[])], 'non-empty list'),
    ([_record(captions=[''])], 'non-empty list'),
    ([dict(_record(), captions='a man')], 'field "captions" must be list'),
    ([dict(_record(), id='1')], 'record 0 field "id" must be int'),
    ([_record(), {'split': 'train', 'id': 2, 'captions': ['x']}],
     'record 1 has no field "file_path"'),
    ([_record(pid=1), _record(pid=3)], 'without gaps'),
    ({'split': 'train'}, 'expected a list'),
])
def test_bad_annotations_name_the_problem(tmp_path, records, message):
    root = _write(tmp_path, records)
    with pytest.raises(ValueError, match=message):
        CUHKPEDES(data_root=root, split='train')


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='reid_raw.json'):
        CUHKPEDES(data_root=str(tmp_path), split='train')
    (tmp_path / 'reid_raw.json').write_text('[{"split": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        CUHKPEDES(data_root=str(tmp_path), split='train')
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        CUHKPEDES(data_root=str(tmp_path), split='dev')


def test_icfg_pedes_pids_and_splits(tmp_path):
    records = [_record('train', 0, 'train/a.jpg'),
               _record('train', 1, 'train/b.jpg'),
               _record('test', 9, 'test/c.jpg')]
    (tmp_path / 'ICFG_PEDES.json').write_text(json.dumps(records))
    train = ICFGPEDES(data_root=str(tmp_path), split='train',
                      ann_file='ICFG_PEDES.json')
    assert [train.get_data_info(i)['pid'] for i in range(2)] == [0, 1]
    with pytest.raises(ValueError, match="unknown split 'val'"):
        ICFGPEDES(data_root=str(tmp_path), split='val',
                  ann_file='ICFG_PEDES.json')
    (tmp_path / 'gap.json').write_text(json.dumps(
        [_record('train', 0), _record('train', 2)]))
    with pytest.raises(ValueError, match='from 0 without gaps'):
        ICFGPEDES(data_root=str(tmp_path), split='train', ann_file='gap.json')


def test_rstpreid_fields_and_relabelled_train_pids(tmp_path):
    records = [
        dict(id=40, img_path='a.jpg', captions=['x', 'y'], split='train'),
        dict(id=7, img_path='b.jpg', captions=['z', 'w'], split='train'),
        dict(id=3900, img_path='c.jpg', captions=['u', 'v'], split='test'),
    ]
    (tmp_path / 'data_captions.json').write_text(json.dumps(records))
    train = RSTPReid(data_root=str(tmp_path), split='train')
    assert [train.get_data_info(i)['pid'] for i in range(4)] == [1, 1, 0, 0]
    test = RSTPReid(data_root=str(tmp_path), split='test')
    assert test.get_data_info(0)['pid'] == 3900
    assert test.get_data_info(0)['img_path'].endswith('imgs/c.jpg')
    (tmp_path / 'data_captions.json').write_text(
        json.dumps([dict(records[0], img_path=None)]))
    with pytest.raises(ValueError, match='field "img_path" must be str'):
        RSTPReid(data_root=str(tmp_path), split='train')


def test_webperson_json_form(tmp_path):
    entries = [{'b/2.jpg': {'caption1': 'second a', 'caption2': 'second b'}},
               {'a/1.jpg': {'caption1': 'first a', 'caption2': 'first b'}}]
    (tmp_path / 'anno.json').write_text(json.dumps(entries))
    dataset = WebPerson(data_root=str(tmp_path), ann_file='anno.json')
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [i['captions'] for i in infos] == [['first a'], ['first b'],
                                              ['second a'], ['second b']]
    assert [i['pid'] for i in infos] == [0, 0, 1, 1]
    assert [i['sample_idx'] for i in infos] == [0, 1, 2, 3]
    assert infos[0]['img_path'].endswith('images/a/1.jpg')
    (tmp_path / 'bad.json').write_text(json.dumps(
        [{'a.jpg': {'caption1': 'x'}}]))
    with pytest.raises(ValueError, match="entry 0 \\(a.jpg\\) has no field "
                       "'caption2'"):
        WebPerson(data_root=str(tmp_path), ann_file='bad.json')
