"""LoadPersonImage: errors that name the record, and the skip policy."""
import json
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
from common import pixel_bomb
from mmengine.logging import MMLogger

from gadms.datasets import (CUHKPEDES, LoadPersonImage, WebPerson,
                            export_synth_person)
from gadms.datasets.transforms import ImageLoadError
from gadms.datasets.transforms.loading import record_skipped_image


def _png(value: int) -> bytes:
    image = np.full((8, 4, 3), value, np.uint8)
    return cv2.imencode('.png', image)[1].tobytes()


def test_reads_files_and_bytes(tmp_path):
    path = tmp_path / 'a.png'
    path.write_bytes(_png(7))
    from_file = LoadPersonImage()(dict(img_path=str(path)))
    assert from_file['img'].shape == (8, 4, 3) and (from_file['img'] == 7
                                                    ).all()
    assert from_file['ori_shape'] == (8, 4)
    from_bytes = LoadPersonImage()(dict(img_path='x.png', img_bytes=_png(9)))
    assert (from_bytes['img'] == 9).all() and 'img_bytes' not in from_bytes


@pytest.mark.parametrize('results, message', [
    (dict(img_path='/nowhere/a.png', source='ann.json record 4'),
     'ann.json record 4, field "img_path": image /nowhere/a.png does not '
     'exist'),
    (dict(img_path='a.png', img_bytes=b'not an image',
          source='s.parquet row 2'),
     r's.parquet row 2, field "image" \(a.png\): image a.png cannot be '
     'decoded'),
    (dict(img_path='a.png', img_bytes=b'', source='s.parquet row 3'),
     r's.parquet row 3, field "image" \(a.png\): no image bytes'),
])
def test_errors_name_record_and_field(results, message):
    with pytest.raises(ImageLoadError, match=message):
        LoadPersonImage()(results)


def test_undecodable_file_names_record(tmp_path):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(b'\xff\xd8 truncated')
    with pytest.raises(ImageLoadError,
                       match=f'ann.json record 0, field "img_path": image '
                       f'{path} cannot be decoded'):
        LoadPersonImage()(dict(img_path=str(path), source='ann.json record 0'))


def test_skip_policy_counts_lists_once_and_dataset_draws_another(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    entries = []
    for i in range(4):
        content = b'garbage' if i in (1, 2) else _png(10 * i)
        (images / f'{i}.png').write_bytes(content)
        entries.append({f'{i}.png': dict(caption1=f'a{i}', caption2=f'b{i}')})
    (tmp_path / 'anno.json').write_text(json.dumps(entries))
    skipped = tmp_path / 'work' / 'skipped_images.jsonl'
    logger = MMLogger.get_instance('skip-policy-test')
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    dataset = WebPerson(
        data_root=str(tmp_path), ann_file='anno.json',
        pipeline=[dict(type='LoadPersonImage', on_error='skip',
                       skipped_list=str(skipped))])
    # samples 2-5 come from the two broken images: each is replaced by a
    # sample of a readable image, drawn at random
    for idx in (2, 3, 4, 5, 2):
        sample = dataset[idx]
        assert sample['img_path'].endswith(('0.png', '3.png'))
    lines = [json.loads(line) for line in skipped.read_text().splitlines()]
    assert sorted(line['path'] for line in lines) == [
        str(images / '1.png'), str(images / '2.png')
    ]
    assert all('cannot be decoded' in line['reason'] for line in lines)
    assert sum('skipped image' in m for m in messages) == 2
    assert any('skipped image 2 ' in m for m in messages)
    with pytest.raises(ImageLoadError, match='anno.json entry 1'):
        WebPerson(data_root=str(tmp_path), ann_file='anno.json',
                  pipeline=[dict(type='LoadPersonImage')])[2]


def test_bad_policy():
    with pytest.raises(ValueError, match="on_error must be 'raise' or "
                       "'skip', got 'ignore'"):
        LoadPersonImage(on_error='ignore')


def test_pixel_cap_refuses_before_decoding(tmp_path, monkeypatch):
    bomb = pixel_bomb()
    assert len(bomb) < 100_000
    decoded = []
    monkeypatch.setattr('mmcv.imfrombytes',
                        lambda *args, **kwargs: decoded.append(1))
    # beyond PIL's own decompression-bomb limit, which reads the header too
    with pytest.raises(ImageLoadError,
                       match=r's.parquet row 5, field "image" \(b.png\): '
                       r'image b.png is too large to decode \(Image size '
                       r'\(400000000 pixels\)'):
        LoadPersonImage()(dict(img_path='b.png', img_bytes=bomb,
                               source='s.parquet row 5'))
    assert not decoded
    # skipped (and listed) under the skip policy
    listed = tmp_path / 'skipped.txt'
    assert LoadPersonImage(on_error='skip', skipped_list=str(listed))(
        dict(img_path='b.png', img_bytes=bomb)) is None
    assert 'image b.png is too large to decode' in listed.read_text()


def test_pixel_cap_below_pils_limit(monkeypatch):
    decoded = []
    monkeypatch.setattr('mmcv.imfrombytes',
                        lambda *args, **kwargs: decoded.append(1))
    with pytest.raises(ImageLoadError, match=r'image b.png decodes to 12000 '
                       r'x 10000 = 120000000 pixels, over the cap of '
                       r'100000000 \(max_pixels\)'):
        LoadPersonImage()(dict(img_path='b.png',
                               img_bytes=pixel_bomb(12000, 10000)))
    assert not decoded


def test_pixel_cap_is_configurable(tmp_path):
    path = tmp_path / 'a.png'
    path.write_bytes(_png(7))  # 8 x 4 = 32 pixels
    assert LoadPersonImage(max_pixels=32)(dict(img_path=str(path)))[
        'img'].shape == (8, 4, 3)
    with pytest.raises(ImageLoadError, match=f'image {path} decodes to 4 x '
                       '8 = 32 pixels, over the cap of 31'):
        LoadPersonImage(max_pixels=31)(dict(img_path=str(path)))


def test_skip_reasons_with_newlines_stay_one_record(tmp_path):
    """OpenCV's messages span lines: one JSON record per skip all the
    same, and a path is still listed once."""
    listed = str(tmp_path / 'skipped.jsonl')
    reason = 'cannot be decoded (OpenCV error:\n  in function imdecode_\n)'
    assert record_skipped_image(listed, 'a.png', reason) == 1
    assert record_skipped_image(listed, 'b\tc.png', 'x\ny') == 2
    assert record_skipped_image(listed, 'a.png', reason) == 0
    lines = open(listed).read().splitlines()
    assert [json.loads(line) for line in lines] == [
        dict(path='a.png', reason=reason),
        dict(path='b\tc.png', reason='x\ny')]


def test_test_datasets_refuse_to_skip_images(tmp_path):
    """A gallery with skipped images would be scored on fewer images and
    queries without a trace: refused when the dataset is built."""
    benchmark = export_synth_person(
        str(tmp_path / 'cuhk'), 'cuhk-pedes',
        num_identities=dict(train=2, val=1, test=1), images_per_identity=2)
    skipping = [dict(type='LoadPersonImage', on_error='skip')]
    with pytest.raises(ValueError, match=r"CUHK-PEDES \(test\): the test "
                       r"pipeline has LoadPersonImage\(on_error='skip'\), "
                       'which would drop unreadable gallery images'):
        CUHKPEDES(data_root=osp.dirname(benchmark), split='test',
                  pipeline=skipping)
    assert len(CUHKPEDES(data_root=osp.dirname(benchmark), split='train',
                         pipeline=skipping)) == 8
