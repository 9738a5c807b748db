"""tools/serve.py's app, served by uvicorn on loopback: search, the word
view, growing the gallery, and its guards (a path outside the gallery, a
link out of it, an oversized upload, an over-long query, a failure)."""
import json
import os
import threading

import cv2
import numpy as np
import pytest
import torch
from common import REPO_ROOT, tool_module

from gadms.apis import TextPersonInferencer
from gadms.apis.token_view import token_scorer
from gadms.serving.app import create_app
from gadms.serving.service import GalleryService, Limits
from gadms.testing.app_server import AppServer, fetch

CONFIG = f'{REPO_ROOT}/configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'
LIMITS = Limits(max_query_chars=80, max_upload_bytes=20_000)


def _person(path, colour) -> None:
    image = np.full((96, 32, 3), 200, np.uint8)
    image[20:80, 6:26] = colour
    assert cv2.imwrite(str(path), image)


def _folder(folder, colours) -> None:
    folder.mkdir(parents=True)
    for number, colour in enumerate(colours):
        _person(folder / f'{number}.png', colour)


@pytest.fixture(scope='module')
def inferencer() -> TextPersonInferencer:
    torch.manual_seed(0)
    return TextPersonInferencer(CONFIG)


@pytest.fixture
def gallery(tmp_path):
    """A gallery folder of six people, and a folder beside it (outside)."""
    _folder(tmp_path / 'gallery', [(0, 0, 200), (0, 200, 0), (200, 0, 0),
                                   (30, 30, 30), (0, 200, 200),
                                   (200, 0, 200)])
    _folder(tmp_path / 'outside', [(10, 10, 250), (250, 250, 10)])
    return tmp_path


@pytest.fixture
def app(inferencer, gallery):
    index = inferencer.build_index(str(gallery / 'gallery'), progress=False)
    service = GalleryService(inferencer, index,
                             token_scorer(inferencer.model, True), LIMITS)
    server = AppServer(create_app(service))
    yield server, service
    server.close()


def test_a_search_answers_what_the_api_does(app, inferencer):
    server, service = app
    query = 'a person in a red shirt'
    status, answer = fetch(server.base, '/api/search', q=query, k=4)
    assert status == 200
    expected = inferencer.search(query, service.index, topk=4)[0]
    assert [hit['row'] for hit in answer['results']] == [
        hit['index'] for hit in expected]
    assert [hit['rank'] for hit in answer['results']] == [1, 2, 3, 4]
    np.testing.assert_allclose([hit['score'] for hit in answer['results']],
                               [hit['score'] for hit in expected], atol=1e-6)
    best = answer['results'][0]['row']
    status, image = fetch(server.base, f'/api/image/{best}')
    path = service.index.image_path(best)
    with open(path, 'rb') as f:
        assert status == 200 and image == f.read()


def test_the_word_view_scores_each_word_of_the_query(app):
    server, _ = app
    status, answer = fetch(server.base, '/api/words', row=2,
                           q='a man in a red jacket')
    assert status == 200
    assert [w['text'] for w in answer['words']] == [
        'a', 'man', 'in', 'a', 'red', 'jacket']
    assert all(0 <= w['score'] <= 1 for w in answer['words'])


def test_a_folder_of_the_gallery_is_added_without_encoding_the_rest(
        app, gallery, monkeypatch):
    server, service = app
    _folder(gallery / 'gallery' / 'day2', [(90, 90, 0), (0, 90, 90)])
    encoded = []
    encode = service.inferencer.encode_images
    monkeypatch.setattr(service.inferencer, 'encode_images',
                        lambda images, *a, **k: encoded.extend(images)
                        or encode(images, *a, **k))
    status, answer = fetch(server.base, '/api/folders',
                           body={'folder': 'day2'})
    assert status == 200 and answer == dict(added=2, skipped=0, images=8)
    assert sorted(os.path.basename(p) for p in encoded) == ['0.png', '1.png']
    assert service.index.paths[-2:] == ['day2/0.png', 'day2/1.png']
    # the new rows are searched like the others
    expected = torch.nn.functional.normalize(encode(
        [str(gallery / 'gallery' / 'day2' / '1.png')]), dim=-1)
    torch.testing.assert_close(service.index.features[-1:].float(),
                               expected, atol=1e-3, rtol=0)


@pytest.mark.parametrize('folder', ['../outside', '{tmp}/outside'])
def test_a_folder_outside_the_gallery_is_refused(app, gallery, folder):
    server, service = app
    status, answer = fetch(server.base, '/api/folders', body={
        'folder': folder.format(tmp=gallery)})
    assert status == 400
    assert answer['error'].endswith(
        f'is outside the gallery folder {gallery / "gallery"}')
    assert len(service.index) == 6


def test_an_image_that_became_a_link_out_is_not_served(app, gallery):
    server, service = app
    row = service.index.paths.index('3.png')
    os.remove(gallery / 'gallery' / '3.png')
    os.symlink(gallery / 'outside' / '0.png', gallery / 'gallery' / '3.png')
    status, answer = fetch(server.base, f'/api/image/{row}')
    assert status == 403
    assert answer == {'error': f'image {row} is a link out of the gallery '
                      'folder and is not served'}


def test_an_upload_is_added_and_an_oversized_one_refused(app, gallery):
    server, service = app
    ok, png = cv2.imencode('.png', np.full((96, 32, 3), 90, np.uint8))
    status, answer = fetch(server.base, '/api/upload', data=png.tobytes(),
                           name='walker.png')
    assert status == 200 and answer['added'] == 1 and answer['images'] == 7
    assert service.index.paths[answer['row']].startswith('uploads/')
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3),
                                              np.uint8)
    big = cv2.imencode('.png', noise)[1].tobytes()
    assert len(big) > LIMITS.max_upload_bytes
    status, answer = fetch(server.base, '/api/upload', data=big,
                           name='big.png')
    assert status == 413
    assert answer == {'error': 'the upload is larger than the limit of '
                      '20000 bytes'}
    assert len(os.listdir(gallery / 'gallery' / 'uploads')) == 1
    assert len(service.index) == 7


def test_an_over_long_query_is_refused(app):
    server, _ = app
    status, answer = fetch(server.base, '/api/search', q='a man ' * 20, k=3)
    assert status == 400
    assert answer == {'error': 'the query has 119 characters; the limit is '
                      '80'}


@pytest.mark.parametrize('path, params, message', [
    ('/api/search', dict(q='  ', k=3),
     'type a description of a person to search'),
    ('/api/search', dict(q='a man', k=99),
     'the number of results must be between 1 and 6, not 99'),
    ('/api/search', dict(q='a man', k='many'), 'the request is malformed (k)'),
    ('/api/image/6', {}, 'there is no image 6 in this gallery of 6'),
])
def test_a_bad_request_gets_one_sentence(app, path, params, message):
    server, _ = app
    status, answer = fetch(server.base, path, **params)
    assert status in (400, 404) and answer == {'error': message}


def test_a_failure_shows_a_sentence_not_a_traceback(app, monkeypatch):
    server, service = app

    def broken(captions):
        raise RuntimeError('the model is broken\nwith a second line')
    monkeypatch.setattr(service.inferencer, 'encode_texts', broken)
    status, answer = fetch(server.base, '/api/search', q='a man', k=3)
    assert status == 500
    assert answer == {'error': 'the server failed (RuntimeError); its log '
                      'has the details'}


def test_waiting_searches_run_as_one_batch(inferencer, gallery):
    """While the worker is busy, the searches that arrive wait and then run
    as one batch, each answered as if alone."""
    index = inferencer.build_index(str(gallery / 'gallery'), progress=False)
    service = GalleryService(inferencer, index, None, LIMITS)
    release, batches = threading.Event(), []
    encode = inferencer.encode_texts

    def counted(captions):
        batches.append(len(captions))
        return encode(captions)
    service._call(release.wait)
    queries = [f'a person number {n}' for n in range(5)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inferencer, 'encode_texts', counted)
        futures = [service.search(q, 3) for q in queries]
        release.set()
        answers = [f.result(timeout=60) for f in futures]
    assert batches == [5]
    for query, answer in zip(queries, answers):
        expected = inferencer.search(query, index, topk=3)[0]
        assert [h['row'] for h in answer] == [h['index'] for h in expected]


def test_a_full_queue_is_refused_as_busy(inferencer, gallery):
    from gadms.serving.service import ServiceError
    index = inferencer.build_index(str(gallery / 'gallery'), progress=False)
    service = GalleryService(inferencer, index, None,
                             Limits(max_waiting=2))
    started, release = threading.Event(), threading.Event()
    service._call(lambda: started.set() or release.wait())
    assert started.wait(60)  # the worker holds one, two wait
    service._call(release.wait)
    service._call(release.wait)
    with pytest.raises(ServiceError, match='busy') as refused:
        service.search('a man', 3)
    assert refused.value.status == 503
    release.set()


def test_the_app_listens_on_loopback_unless_told():
    tool = tool_module('tools/serve.py')
    args = tool.parse_args(['config.py', 'model.pth', '--gallery', 'photos'])
    assert args.host == '127.0.0.1'
    with pytest.raises(SystemExit):
        tool.parse_args(['config.py', 'model.pth', '--pretrained', 'folder',
                         '--gallery', 'photos'])


def test_json_errors_carry_no_traceback(app):
    server, _ = app
    status, answer = fetch(server.base, '/api/folders', body='not json')
    assert status == 400 and 'Traceback' not in json.dumps(answer)
