"""The download stage against a loopback web that misbehaves: 404, 500,
a slow drip, a non-image, a huge answer, a pixel bomb, redirects to
another port, redirect loops; each outcome counted, nothing hanging."""
import glob
import json
import os.path as osp
import time
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from common import pixel_bomb, run_tool

from gadms.corpus.download import (DownloadOptions, download_image,
                                   run_download_stage)
from gadms.testing.loopback import LoopbackServer

FAST = DownloadOptions(timeout=1.0, retries=1, backoff=0.0, threads=4,
                       max_bytes=2 << 20)


def _png(side: int = 24, value: int = 90) -> bytes:
    image = np.full((side, side // 2, 3), value, np.uint8)
    return cv2.imencode('.png', image)[1].tobytes()


class Web(LoopbackServer):
    """A loopback server with a route per behaviour; records the
    ``Authorization`` header each path was asked with."""

    def __init__(self, routes: dict) -> None:
        self.routes, self.asked = routes, []
        web = self

        class Handler(BaseHTTPRequestHandler):

            def do_GET(self):  # noqa: N802 (http.server's name)
                web.asked.append((self.path,
                                  self.headers.get('Authorization')))
                web.routes[self.path](self)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def _answer(body: bytes, status: int = 200, length=None, drip=0.0,
            content_type='image/png'):
    def handle(handler):
        handler.send_response(status)
        handler.send_header('Content-Type', content_type)
        if length != 'none':
            handler.send_header('Content-Length', str(length or len(body)))
        handler.end_headers()
        step = 1 if drip else max(1, len(body))
        try:
            for start in range(0, len(body), step):
                handler.wfile.write(body[start:start + step])
                handler.wfile.flush()
                time.sleep(drip)
        except OSError:  # the client gave up: expected for drips
            pass
    return handle


def _redirect(location: str):
    def handle(handler):
        handler.send_response(302)
        handler.send_header('Location', location)
        handler.send_header('Content-Length', '0')
        handler.end_headers()
    return handle


def _flaky(body: bytes):
    calls = []

    def handle(handler):
        calls.append(1)
        _answer(b'busy', status=503)(handler) if len(calls) == 1 else \
            _answer(body)(handler)
    return handle


@pytest.fixture(scope='module')
def webs():
    """Two servers on two ports: ``other`` is where redirects lead."""
    other = Web({'/landing.png': _answer(_png(32))})
    web = Web({
        '/ok.png': _answer(_png()),
        '/missing.png': _answer(b'', status=404),
        '/broken.png': _answer(b'oops', status=500),
        '/flaky.png': _flaky(_png(28)),
        '/drip.png': _answer(_png() * 50, drip=0.05),
        '/page.html': _answer(b'<html>not an image</html>',
                              content_type='text/html'),
        '/huge.png': _answer(b'\0' * 64, length=1 << 30),
        '/endless.png': _answer(b'\0' * (3 << 20), length='none'),
        '/bomb.png': _answer(pixel_bomb(20000, 20000)),
        '/moved.png': _redirect(other.base + '/landing.png'),
        '/loop.png': _redirect('/loop.png'),
        '/to-file.png': _redirect('file:///etc/hostname'),
    })
    yield web, other
    web.close()
    other.close()


EXPECTED = {
    '/ok.png': 'ok', '/missing.png': 'http 404', '/broken.png': 'http 500',
    '/flaky.png': 'ok', '/drip.png': 'timeout', '/page.html': 'not an image',
    '/huge.png': 'too large', '/endless.png': 'too large',
    '/bomb.png': 'oversized image', '/moved.png': 'ok',
    '/loop.png': 'too many redirects',
    '/to-file.png': 'redirect to a non-http URL',
}


def test_each_fault_has_its_status_and_nothing_hangs(webs):
    web, other = webs
    options = DownloadOptions(timeout=1.0, retries=1, backoff=0.0,
                              max_bytes=2 << 20,
                              headers={'Authorization': 'Bearer private'})
    for path, status in EXPECTED.items():
        started = time.monotonic()
        result = download_image(web.base + path, options)
        # a bound against hanging, far above the deadline x attempts
        assert time.monotonic() - started < 15, path
        assert result['status'] == status, path
        if status == 'ok':
            decoded = cv2.imdecode(np.frombuffer(result['image'], np.uint8),
                                   cv2.IMREAD_COLOR)
            assert decoded.shape[:2] == (result['height'], result['width'])
        else:
            assert result['image'] is None
    # the redirect to another port was followed without the private header
    assert ('/moved.png', 'Bearer private') in web.asked
    assert other.asked == [('/landing.png', None)]
    # 404 is final, 500 retried once, the flaky 503 then answered
    assert [p for p, _ in web.asked].count('/missing.png') == 1
    assert [p for p, _ in web.asked].count('/broken.png') == 2
    assert download_image('ftp://127.0.0.1/a.png', options)['status'] == \
        'not an http(s) URL'


def test_originals_are_kept_unless_resized(webs):
    web, _ = webs
    kept = download_image(web.base + '/landing.png'.replace(
        '/landing.png', '/ok.png'), FAST)
    assert kept['image'] == _png() and (kept['width'], kept['height']) == (
        12, 24)
    small = download_image(web.base + '/ok.png', DownloadOptions(
        timeout=1.0, resize_max_side=12))
    assert (small['width'], small['height']) == (6, 12)


def _url_table(path, rows) -> None:
    pq.write_table(pa.Table.from_pylist(rows), str(path))


def test_stage_deduplicates_counts_and_resumes(webs, ray_local, tmp_path):
    web, _ = webs
    tables = tmp_path / 'urls'
    tables.mkdir()
    paths = list(EXPECTED)
    rows = [dict(key=f'{i:04d}', url=web.base + p, text=f'caption {i}')
            for i, p in enumerate(paths)]
    # the same URL again under a larger key, in another table
    _url_table(tables / 'part-0.parquet', rows[:6])
    _url_table(tables / 'part-1.parquet', rows[6:] + [
        dict(key='9999', url=web.base + '/ok.png', text='again')])
    out = str(tmp_path / 'out')
    report = run_download_stage(str(tables), out, FAST, concurrency=1,
                                batch_size=4, num_partitions=2)
    expected_counts = {}
    for status in EXPECTED.values():
        expected_counts[status] = expected_counts.get(status, 0) + 1
    assert report['input_rows'] == 13 and report['duplicate_urls'] == 1
    assert report['status'] == dict(sorted(expected_counts.items()))
    written = pa.concat_tables(
        pq.read_table(f) for f in glob.glob(osp.join(out, 'images', '*',
                                                      '*.parquet')))
    by_url = {r['url']: r for r in written.to_pylist()}
    assert by_url[web.base + '/ok.png']['key'] == '0000'  # smallest key
    assert by_url[web.base + '/ok.png']['image'] == _png()
    assert json.load(open(osp.join(out, 'download_report.json'))) == report
    # a re-run downloads nothing again
    asked = len(web.asked)
    again = run_download_stage(str(tables), out, FAST, concurrency=1,
                               batch_size=4, num_partitions=2)
    assert again['downloaded_this_run'] == 0 and len(web.asked) == asked
    assert again['status'] == report['status']


def test_download_cli_runs_on_local_ray(webs, tmp_path):
    """The documented command on a small table, in a pipe: the report is
    printed as JSON and the log stays short (no progress bars)."""
    web, _ = webs
    _url_table(tmp_path / 'table.parquet', [
        dict(key='a', url=web.base + '/ok.png', text='x'),
        dict(key='b', url=web.base + '/missing.png', text='y')])
    out = tmp_path / 'out'
    result = run_tool(
        'tools/dataset_converters/build_webperson_corpus.py', 'download',
        str(tmp_path / 'table.parquet'), str(out), '--num-cpus', '1',
        '--concurrency', '1', '--partitions', '1', '--timeout', '2',
        '--retries', '0', timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index('{'):])
    assert report['status'] == {'http 404': 1, 'ok': 1}
    assert len((result.stdout + result.stderr).splitlines()) < 200
