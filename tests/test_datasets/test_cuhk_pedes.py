import json

import pytest

from gadms.datasets import CUHKPEDES


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
