"""The corpus pipeline offline: SynthPerson scenes, precomputed detections
and a fake OpenAI-compatible server on 127.0.0.1."""
import base64
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from common import REPO_ROOT

from gadms.corpus import (OpenAIChatCaptioner, PrecomputedDetector,
                          read_manifest, run_caption_stage, run_export_stage,
                          run_filter_stage)
from gadms.datasets import LoadPersonImage, SynthPerson, WebPerson

NUM_SCENES = 10
GOOD_BOX = [50, 50, 170, 350]  # 120 x 300: aspect 2.5
TEMPLATES = ['A [person] in a [colour] [upper] and [colour] [lower].',
             'The [person] wears [colour] [shoes] and carries a [bag].']


def _keypoints(hidden=()):
    points = [[100.0, 60.0 + 15 * i, 0.9] for i in range(17)]
    for i in hidden:
        points[i][2] = 0.1
    return points


def _good(**changes):
    return dict(dict(box=GOOD_BOX, score=0.95, keypoints=_keypoints()),
                **changes)


# one detection per rule that must reject it (all in scene 0)
REJECTED = {
    'too small': _good(box=[300, 50, 360, 200]),
    'aspect ratio': _good(box=[300, 50, 500, 300]),
    'low confidence': _good(score=0.5),
    'too few keypoints': _good(keypoints=_keypoints(hidden=range(11))),
    'no hip keypoint': _good(keypoints=_keypoints(hidden=(11, 12))),
    'too few head keypoints': _good(keypoints=_keypoints(hidden=(1, 2, 3,
                                                                 4))),
    'no keypoints': dict(box=GOOD_BOX, score=0.95),
}


@pytest.fixture(scope='module')
def scenes(tmp_path_factory) -> str:
    """Scenes with one person each, a broken file, and the detections."""
    root = tmp_path_factory.mktemp('scenes')
    images = root / 'images'
    images.mkdir()
    people = SynthPerson(split='train', image_size=(300, 120),
                         num_identities=dict(train=NUM_SCENES, val=1,
                                             test=1),
                         images_per_identity=1)
    detections = {}
    for i in range(NUM_SCENES):
        scene = np.full((400, 600, 3), 90, np.uint8)
        scene[50:350, 50:170] = people.get_data_info(2 * i)['img']
        cv2.imwrite(str(images / f'scene_{i:02d}.png'), scene)
        detections[f'scene_{i:02d}.png'] = [_good()]
    detections['scene_00.png'] += list(REJECTED.values())
    (images / 'broken.jpg').write_bytes(b'not an image')
    (root / 'detections.json').write_text(json.dumps(detections))
    return str(root)


class FakeServer:
    """Chat-completions endpoint answering by the image's hash: each image
    has a script of answers (str) or HTTP errors (int), one per request."""

    def __init__(self, delay: float = 0.0) -> None:
        self.scripts, self.requests = {}, Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):

            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(
                    int(self.headers['Content-Length'])))
                url = body['messages'][0]['content'][1]['image_url']['url']
                digest = hashlib.sha1(base64.b64decode(
                    url.split(',', 1)[1])).hexdigest()
                time.sleep(delay)
                with server.lock:
                    step = server.requests[digest]
                    server.requests[digest] += 1
                script = server.scripts.get(digest, [])
                answer = script[step] if step < len(script) else (
                    f'A person {digest[:8]} in request {step} wears a '
                    'plain coat and dark trousers.')
                if isinstance(answer, int):
                    self.send_error(answer)
                    return
                payload = json.dumps(dict(choices=[dict(message=dict(
                    content=answer))])).encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_port}/v1'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def _sha(out_dir: str, item: dict) -> str:
    with open(osp.join(out_dir, item['crop']), 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def _normal(k: int, j: int) -> str:
    return f'A person number {k} wears a blue coat and trousers, take {j}.'


def test_whole_pipeline(scenes, tmp_path):
    out = str(tmp_path / 'corpus')
    report = run_filter_stage(
        osp.join(scenes, 'images'),
        PrecomputedDetector(osp.join(scenes, 'detections.json')), out,
        shard_size=4)
    assert report['kept'] == NUM_SCENES
    assert report['rejected'] == {reason: 1 for reason in REJECTED}
    assert report['counts']['unreadable image'] == 1
    assert report['unreadable_images'] == ['broken.jpg']
    items = read_manifest(out)
    assert [i['source'] for i in items] == [
        f'scene_{i:02d}.png' for i in range(NUM_SCENES)
    ]
    assert all(i['box'] == GOOD_BOX for i in items)
    crop = cv2.imread(osp.join(out, items[3]['crop']))
    scene = cv2.imread(osp.join(scenes, 'images', 'scene_03.png'))
    assert (crop == scene[50:350, 50:170]).all()
    # re-running skips the finished shards and keeps the report
    assert run_filter_stage(
        osp.join(scenes, 'images'),
        PrecomputedDetector(osp.join(scenes, 'detections.json')), out,
        shard_size=4) == report

    server = FakeServer()
    shas = [_sha(out, item) for item in items]
    shared = _normal(99, 0)
    scripts = {
        0: [500, 503, _normal(0, 1), _normal(0, 2)],   # transient errors
        1: ['', _normal(1, 2)],                        # empty
        2: ["I'm sorry, I can't describe this person.", _normal(2, 2)],
        3: [shared, _normal(3, 2)],
        4: [shared, _normal(4, 2)],                    # repeats crop 3
        5: ['A man wearing a', _normal(5, 2)],         # truncated
        6: [_normal(6, 1), _normal(6, 1)],             # repeats itself
    }
    server.scripts = {shas[k]: v for k, v in scripts.items()}
    captioner = OpenAIChatCaptioner(server.url, 'fake-mllm', retries=3,
                                    backoff=0.01, timeout=10)
    report = run_caption_stage(out, captioner, TEMPLATES, concurrency=4)
    assert report['captioned'] == NUM_SCENES and not report[
        'failed_this_run']
    assert server.requests[shas[0]] == 4  # two 5xx retried
    again = run_caption_stage(out, captioner, TEMPLATES, concurrency=4)
    assert again['captioned_this_run'] == 0
    assert sum(server.requests.values()) == 2 * NUM_SCENES + 2
    server.close()

    report = run_export_stage(out, rows_per_shard=2)
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
    assert (image == cv2.imread(osp.join(out, items[3]['crop']))).all()
    for name in ('filter_report.json', 'caption_report.json',
                 'export_report.json'):
        assert osp.isfile(osp.join(out, name))


def test_failures_are_recorded_and_retried(scenes, tmp_path):
    out = str(tmp_path / 'corpus')
    run_filter_stage(osp.join(scenes, 'images'),
                     PrecomputedDetector(osp.join(scenes,
                                                  'detections.json')), out)
    server = FakeServer()
    bad = _sha(out, read_manifest(out)[2])
    server.scripts = {bad: [500, 500]}  # both attempts of the first run
    captioner = OpenAIChatCaptioner(server.url, 'fake-mllm', retries=1,
                                    backoff=0.01)
    report = run_caption_stage(out, captioner, TEMPLATES, concurrency=2)
    assert report['failed_this_run'] == {'CaptionError': 1}
    assert report['still_missing'] == 1
    failures = [json.loads(line)
                for line in open(osp.join(out, 'failures.jsonl'))]
    assert len(failures) == 1 and 'HTTP 500' in failures[0]['error']
    report = run_caption_stage(out, captioner, TEMPLATES, concurrency=2)
    assert report['captioned'] == NUM_SCENES and report['still_missing'] == 0
    server.close()


def test_killed_captioning_resumes_without_repeats(scenes, tmp_path):
    out = str(tmp_path / 'corpus')
    run_filter_stage(osp.join(scenes, 'images'),
                     PrecomputedDetector(osp.join(scenes,
                                                  'detections.json')), out)
    (tmp_path / 'templates.json').write_text(json.dumps(TEMPLATES))
    server = FakeServer(delay=0.1)
    command = [
        sys.executable, 'tools/dataset_converters/build_webperson_corpus.py',
        'caption', out, '--templates', str(tmp_path / 'templates.json'),
        '--base-url', server.url, '--model', 'fake-mllm', '--concurrency',
        '1'
    ]
    run = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    results = osp.join(out, 'captions.jsonl')
    deadline = time.time() + 120
    while not (osp.exists(results) and
               len(open(results).read().splitlines()) >= 3):
        assert run.poll() is None and time.time() < deadline
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    server.close()
    ids = [json.loads(line)['id'] for line in open(results)]
    assert sorted(ids) == sorted(i['id'] for i in read_manifest(out))
    # at most the crop in flight at the kill was asked again
    assert sum(n > 2 for n in server.requests.values()) <= 1


def test_same_stem_images_and_a_kill_before_the_report(scenes, tmp_path,
                                                       monkeypatch):
    images = tmp_path / 'images'
    images.mkdir()
    scene = cv2.imread(osp.join(scenes, 'images', 'scene_01.png'))
    cv2.imwrite(str(images / 'p.png'), scene)
    cv2.imwrite(str(images / 'p.jpg'), scene)
    cv2.imwrite(str(images / 'q.png'), scene)
    detections = tmp_path / 'detections.json'
    detections.write_text(json.dumps(
        {name: [_good()] for name in ('p.png', 'p.jpg', 'q.png')}))
    out = str(tmp_path / 'corpus')
    import gadms.corpus.pipeline as pipeline
    write_json = pipeline._write_json

    def killed_at_the_report(path, content):
        if path.endswith('filter_report.json'):
            raise KeyboardInterrupt  # the process dies here
        write_json(path, content)

    monkeypatch.setattr(pipeline, '_write_json', killed_at_the_report)
    with pytest.raises(KeyboardInterrupt):  # shards done, report not
        run_filter_stage(str(images), PrecomputedDetector(str(detections)),
                         out, shard_size=2)
    monkeypatch.setattr(pipeline, '_write_json', write_json)
    report = run_filter_stage(str(images),
                              PrecomputedDetector(str(detections)), out,
                              shard_size=2)
    assert report['counts']['images'] == 3 and report['kept'] == 3
    items = read_manifest(out)
    assert len({item['id'] for item in items}) == 3
    assert len({item['crop'] for item in items}) == 3
    assert sorted(item['source'] for item in items) == ['p.jpg', 'p.png',
                                                        'q.png']


def test_export_killed_midway_keeps_the_previous_shards(tmp_path,
                                                        monkeypatch):
    out = tmp_path / 'corpus'
    (out / 'manifest').mkdir(parents=True)
    (out / 'crops').mkdir()
    items, captions = [], []
    for k in range(5):
        crop = f'crops/c{k}.png'
        cv2.imwrite(str(out / crop), np.full((40, 16, 3), 20 * k, np.uint8))
        items.append(dict(id=crop, crop=crop, source=f's{k}.png'))
        captions.append(dict(id=crop, caption1=_normal(k, 1),
                             caption2=_normal(k, 2)))
    (out / 'manifest' / '00000.jsonl').write_text(
        ''.join(json.dumps(i) + '\n' for i in items))
    (out / 'captions.jsonl').write_text(
        ''.join(json.dumps(c) + '\n' for c in captions))
    assert run_export_stage(str(out), rows_per_shard=2)['shards'] == 3
    before = WebPerson(data_root=str(out), ann_file='data')
    import gadms.corpus.pipeline as pipeline
    write_table = pipeline.pq.write_table
    written = []

    def dies_on_the_second_shard(table, path, **kwargs):
        written.append(path)
        if len(written) == 2:
            raise KeyboardInterrupt  # killed while exporting
        write_table(table, path, **kwargs)

    monkeypatch.setattr(pipeline.pq, 'write_table', dies_on_the_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run_export_stage(str(out), rows_per_shard=1)
    monkeypatch.setattr(pipeline.pq, 'write_table', write_table)
    after = WebPerson(data_root=str(out), ann_file='data')
    assert len(after) == len(before) == 10
    assert sorted(os.listdir(out / 'data')) == [
        f'train-{i:05d}-of-00003.parquet' for i in range(3)]
    # the next complete export replaces them
    assert run_export_stage(str(out), rows_per_shard=1)['shards'] == 5
    assert len(os.listdir(out / 'data')) == 5


def test_filter_skips_images_over_the_pixel_cap(tmp_path, monkeypatch):
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'small.png'), np.zeros((20, 10, 3), np.uint8))
    cv2.imwrite(str(images / 'large.png'), np.zeros((50, 40, 3), np.uint8))
    seen = []
    report = run_filter_stage(str(images),
                              lambda name, image: seen.append(name) or [],
                              str(tmp_path / 'out'), max_pixels=1000)
    assert seen == ['small.png']  # the large one was never decoded
    assert report['counts'] == {'images': 1, 'oversized image': 1}
    assert report['unreadable_images'] == ['large.png']


# A captioning child killed half-way through writing its third result line:
# the line's first half reaches the file, then SIGKILL.
KILLED_WHILE_WRITING = '''
import json, os, signal, sys, types
from gadms.corpus import pipeline

out_dir = sys.argv[1]
written = []

def dumps(obj, **kwargs):
    line = json.dumps(obj, **kwargs)
    if 'caption1' in obj:
        written.append(obj['id'])
        if len(written) == 3:
            with open(os.path.join(out_dir, 'captions.jsonl'), 'a') as f:
                f.write(line[:len(line) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return line

pipeline.json = types.SimpleNamespace(dumps=dumps, loads=json.loads,
                                      dump=json.dump, load=json.load)
pipeline.run_caption_stage(out_dir, lambda image, prompt: 'a ' + prompt,
                           ['a person in [colour]'], concurrency=1)
'''


def test_torn_last_result_line_is_cut_and_redone(scenes, tmp_path):
    out = str(tmp_path / 'corpus')
    run_filter_stage(osp.join(scenes, 'images'),
                     PrecomputedDetector(osp.join(scenes,
                                                  'detections.json')), out)
    child = subprocess.run([sys.executable, '-c', KILLED_WHILE_WRITING, out],
                           cwd=REPO_ROOT, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    results = osp.join(out, 'captions.jsonl')
    content = open(results).read()
    assert content.count('\n') == 2 and not content.endswith('\n')
    report = run_caption_stage(out, lambda image, prompt: 'a ' + prompt,
                               ['a person in [colour]'], concurrency=1)
    assert report['captioned'] == NUM_SCENES
    assert report['captioned_this_run'] == NUM_SCENES - 2
    rows = [json.loads(line) for line in open(results)]
    assert sorted(r['id'] for r in rows) == sorted(
        i['id'] for i in read_manifest(out))
