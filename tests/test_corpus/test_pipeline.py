"""The corpus stages on Ray Data, offline: SynthPerson scenes,
precomputed detections and a fake OpenAI-compatible server on 127.0.0.1;
resumption, a killed driver and killed workers."""
import glob
import hashlib
import json
import os.path as osp
from functools import partial

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_scenes import GOOD_BOX, NUM_SCENES, REJECTED, TEMPLATES, good

from gadms.corpus import (FilterOptions, PrecomputedDetector,
                          ServerCaptionBackend, run_caption_stage,
                          run_export_stage, run_filter_stage)
from gadms.corpus.caption_stage import openai_servers
from gadms.datasets import LoadPersonImage, WebPerson
from gadms.datasets.transforms import AnnotateTokens, get_tokenizer
from gadms.testing.loopback import FakeCaptionServer

pytestmark = pytest.mark.usefixtures('ray_local')


def _backend(url: str, **kwargs) -> ServerCaptionBackend:
    return ServerCaptionBackend(
        partial(openai_servers, [url], model='fake-mllm', timeout=10,
                **dict(dict(retries=3, backoff=0.01), **kwargs)), threads=4)


def _crops(out: str, status: str = 'kept') -> list:
    """Crop rows of the filter stage with ``status``, sorted by id."""
    table = pa.concat_tables(pq.read_table(f, partitioning=None) for f in
                             glob.glob(osp.join(out, 'crops', '*', '*')))
    rows = [r for r in table.to_pylist() if r['status'] == status]
    return sorted(rows, key=lambda r: (r['id'] or '', r['source']))


def _sha(row: dict) -> str:
    return hashlib.sha1(row['image']).hexdigest()


def _normal(k: int, j: int) -> str:
    return f'A person number {k} wears a blue coat and trousers, take {j}.'


def _filter(scenes: str, out: str, **options) -> dict:
    return run_filter_stage(
        osp.join(scenes, 'images'),
        PrecomputedDetector(osp.join(scenes, 'detections.json')), out,
        FilterOptions(**options))


def test_whole_pipeline(scenes, tmp_path):
    out = str(tmp_path / 'corpus')
    report = _filter(scenes, out, shard_size=4, shards_per_run=2)
    assert report['kept'] == NUM_SCENES and report['shards'] == 3
    assert report['rejected'] == {reason: 1 for reason in REJECTED}
    assert report['counts']['unreadable image'] == 1
    assert report['unreadable_images'] == ['broken.jpg']
    assert report['images'] == NUM_SCENES + 1
    items = _crops(out)
    assert [i['source'] for i in items] == [
        f'scene_{i:02d}.png' for i in range(NUM_SCENES)
    ]
    assert all(i['box'] == GOOD_BOX for i in items)
    crop = cv2.imdecode(np.frombuffer(items[3]['image'], np.uint8),
                        cv2.IMREAD_COLOR)
    scene = cv2.imread(osp.join(scenes, 'images', 'scene_03.png'))
    assert (crop == scene[50:350, 50:170]).all()  # PNG source: lossless
    # re-running skips the finished shards and keeps the report
    again = _filter(scenes, out, shard_size=4)
    assert again['images_this_run'] == 0
    assert {k: v for k, v in again.items() if 'this_run' not in k} == {
        k: v for k, v in report.items() if 'this_run' not in k}

    server = FakeCaptionServer()
    shas = [_sha(item) for item in items]
    shared = _normal(99, 0)
    scripts = {
        0: [500, 503, _normal(0, 1), _normal(0, 2)],   # transient errors
        1: ['', _normal(1, 2)],                        # empty
        2: ["I'm sorry, I can't describe this person.", _normal(2, 2)],
        3: [shared, _normal(3, 2)],
        4: [shared, _normal(4, 2)],                    # repeats crop 3
        5: ['A man wearing a', _normal(5, 2)],         # truncated
        6: [_normal(6, 1), _normal(6, 1)],             # repeats itself
        **{k: [_normal(k, 1), _normal(k, 2)] for k in (7, 8, 9)},
    }
    server.scripts = {shas[k]: v for k, v in scripts.items()}
    # one request at a time per crop, so each script plays in order
    backend = _backend(server.url)
    backend.threads, backend.batch_size = 1, 1
    report = run_caption_stage(out, backend, TEMPLATES)
    assert report['captions'] == 2 * NUM_SCENES
    assert report['still_missing'] == 0 and not report['failed_this_run']
    assert server.requests[shas[0]] == 4  # two 5xx retried
    again = run_caption_stage(out, backend, TEMPLATES)
    assert again['requests_this_run'] == 0
    assert sum(server.requests.values()) == 2 * NUM_SCENES + 2
    server.close()

    report = run_export_stage(out, num_buckets=3)
    assert report['kept'] == 5 and report['shards'] == 3
    assert report['dropped_captions'] == {
        'empty': 1, 'refusal': 1, 'duplicate': 2, 'truncated': 1
    }
    dataset = WebPerson(data_root=out, ann_file='data')
    kept = [0, 3, 7, 8, 9]
    assert len(dataset) == 2 * len(kept)
    first = dataset.get_data_info(0)
    assert first['captions'] == [_normal(0, 1)]
    assert dataset.get_data_info(3)['captions'] == [_normal(3, 2)]
    image = LoadPersonImage()(dataset.get_data_info(2))['img']
    assert (image == cv2.imdecode(np.frombuffer(items[3]['image'], np.uint8),
                                  cv2.IMREAD_COLOR)).all()
    for name in ('filter_report.json', 'caption_report.json',
                 'export_report.json'):
        assert osp.isfile(osp.join(out, name))
    assert not osp.exists(osp.join(out, 'export.part'))


def test_failed_captions_are_recorded_and_only_they_retried(scenes,
                                                            tmp_path):
    out = str(tmp_path / 'corpus')
    _filter(scenes, out)
    server = FakeCaptionServer()
    bad = _sha(_crops(out)[2])
    # both attempts of both captions of the first run
    server.scripts = {bad: [500] * 4}
    report = run_caption_stage(out, _backend(server.url, retries=1),
                               TEMPLATES)
    assert report['failed_this_run'] == {'CaptionError': 2}
    assert report['still_missing'] == 2
    assert report['captions'] == 2 * NUM_SCENES - 2
    asked = sum(server.requests.values())
    report = run_caption_stage(out, _backend(server.url, retries=1),
                               TEMPLATES)
    assert report['requests_this_run'] == 2
    assert sum(server.requests.values()) == asked + 2
    assert report['captions'] == 2 * NUM_SCENES and report[
        'still_missing'] == 0
    attempts = sorted(glob.glob(osp.join(out, 'captions', '*',
                                         'attempt-*')))
    assert [osp.basename(a) for a in attempts] == ['attempt-000',
                                                   'attempt-001']
    first = pq.read_table(glob.glob(osp.join(attempts[0], '*'))[0])
    failed = [r for r in first.to_pylist() if r['error']]
    assert len(failed) == 2 and 'HTTP 500' in failed[0]['error']
    server.close()


def test_logprobs_reach_the_training_pipeline(scenes, tmp_path):
    """caption with logprobs -> export with word confidences -> WebPerson
    -> AnnotateTokens: each token carries its word's probability by the
    fake server's rule (test_caption_backends._fake_confidences)."""
    from test_caption_backends import _fake_confidences
    out = str(tmp_path / 'corpus')
    _filter(scenes, out, shard_size=4)
    server = FakeCaptionServer()
    run_caption_stage(out, _backend(server.url, logprobs=True), TEMPLATES)
    server.close()
    report = run_export_stage(out, num_buckets=2, word_confidences=True)
    # two templates: crops whose captions drew the same one lose them
    assert report['kept'] >= 2
    dataset = WebPerson(data_root=out, ann_file='data')
    tokenizer = get_tokenizer(77)
    for index in (0, 3):
        info = dataset.get_data_info(index)
        caption = info['captions'][0]
        words = info['caption_annotations'][index % 2]['word_confidences']
        np.testing.assert_allclose([p for _, p in words], [
            p for _, p in _fake_confidences(caption)])
        row = AnnotateTokens()(info)['token_annotation'][0]
        # every piece of a word carries the word's probability
        expected = [0.0]
        for word, p in _fake_confidences(caption):
            expected += [p] * len(tokenizer.encode(word))
        np.testing.assert_allclose(row[:len(expected)], expected,
                                   rtol=1e-6)
    # without the option, the corpus has the four published columns
    run_export_stage(out, num_buckets=2)
    assert 'caption_annotations' not in WebPerson(
        data_root=out, ann_file='data').get_data_info(0)


def test_same_stem_images_get_their_own_crops(scenes, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    scene = cv2.imread(osp.join(scenes, 'images', 'scene_01.png'))
    cv2.imwrite(str(images / 'p.png'), scene)
    cv2.imwrite(str(images / 'p.jpg'), scene)
    cv2.imwrite(str(images / 'q.png'), scene)
    detections = tmp_path / 'detections.json'
    detections.write_text(json.dumps(
        {name: [good()] for name in ('p.png', 'p.jpg', 'q.png')}))
    out = str(tmp_path / 'corpus')
    report = run_filter_stage(str(images),
                              PrecomputedDetector(str(detections)), out,
                              FilterOptions(shard_size=2))
    assert report['decoded_images'] == 3 and report['kept'] == 3
    items = _crops(out)
    assert [i['id'] for i in items] == [
        '00000/p.jpg_0.jpg', '00000/p.png_0.png', '00001/q.png_0.png']


def test_filter_skips_images_over_the_pixel_cap(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'small.png'), np.zeros((20, 10, 3), np.uint8))
    cv2.imwrite(str(images / 'large.png'), np.zeros((50, 40, 3), np.uint8))
    (tmp_path / 'none.json').write_text('{}')
    report = run_filter_stage(
        str(images), PrecomputedDetector(str(tmp_path / 'none.json')),
        str(tmp_path / 'out'), FilterOptions(max_pixels=1000))
    assert report['counts'] == {'no person': 1, 'oversized image': 1}
    assert report['unreadable_images'] == ['large.png']
