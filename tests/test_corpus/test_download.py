"""The download stage against a loopback web that misbehaves: 404, 500,
a slow drip, a non-image, a huge answer, a pixel bomb, redirects to
another port, redirect loops; each outcome counted, nothing hanging."""
import asyncio
import glob
import io
import json
import os
import os.path as osp
import time
import zlib
from http.server import BaseHTTPRequestHandler

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from common import pixel_bomb, run_tool
from PIL import Image

from gadms.corpus.download import (_deduplicate_bucket,
                                   deduplicate_single_table,
                                   run_download_stage, split_url_table)
from gadms.corpus.web_fetch import (DownloadOptions, Refused, decode,
                                    download_image, fetch_images)
from gadms.testing.loopback import LoopbackServer, scene

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
    # a redirect loop is followed max_redirects times, then refused
    assert [p for p, _ in web.asked].count('/loop.png') == \
        options.max_redirects + 1
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


@pytest.mark.parametrize('pool', ['ray', 'local'])
def test_stage_deduplicates_counts_and_resumes(webs, ray_local, tmp_path,
                                               pool):
    """The same outcomes with the tasks on Ray and in a local pool."""
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
                                num_partitions=2, pool=pool)
    expected_counts = {}
    for status in EXPECTED.values():
        expected_counts[status] = expected_counts.get(status, 0) + 1
    assert report['input_rows'] == 13 and report['duplicate_urls'] == 1
    assert report['status'] == dict(sorted(expected_counts.items()))
    written = pa.concat_tables(pq.read_table(f) for f in glob.glob(
        osp.join(out, 'images', '*', '*.parquet')))
    by_url = {r['url']: r for r in written.to_pylist()}
    assert by_url[web.base + '/ok.png']['key'] == '0000'  # smallest key
    assert by_url[web.base + '/ok.png']['image'] == _png()
    assert json.load(open(osp.join(out, 'download_report.json'))) == report
    # a re-run downloads nothing again
    asked = len(web.asked)
    again = run_download_stage(str(tables), out, FAST, concurrency=1,
                               num_partitions=2, pool=pool)
    assert again['downloaded_this_run'] == 0 and len(web.asked) == asked
    assert again['status'] == report['status']


def test_download_cli_runs_without_ray(webs, tmp_path):
    """The documented command on a small table, in a pipe: without
    ``--address`` it runs in local processes and starts no Ray; the
    report is printed as JSON and the log stays short (no progress
    bars)."""
    web, _ = webs
    _url_table(tmp_path / 'table.parquet', [
        dict(key='a', url=web.base + '/ok.png', text='x'),
        dict(key='b', url=web.base + '/missing.png', text='y')])
    out = tmp_path / 'out'
    result = run_tool(
        'tools/dataset_converters/build_webperson_corpus.py', 'download',
        str(tmp_path / 'table.parquet'), str(out),
        '--concurrency', '1', '--partitions', '1', '--timeout', '2',
        '--retries', '0', timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index('{'):])
    assert report['status'] == {'http 404': 1, 'ok': 1}
    assert len((result.stdout + result.stderr).splitlines()) < 200
    assert 'Ray' not in result.stdout + result.stderr


def _rotated_jpeg() -> bytes:
    """A 20 x 40 JPEG whose EXIF says: turn it a quarter (orientation 6),
    so that it shows 40 wide and 20 high."""
    image = np.zeros((40, 20, 3), np.uint8)
    image[:10] = 255
    picture = Image.fromarray(image)
    exif = picture.getexif()
    exif[0x0112] = 6
    out = io.BytesIO()
    picture.save(out, 'JPEG', exif=exif.tobytes())
    return out.getvalue()


def test_a_jpeg_is_checked_at_reduced_scale_with_its_full_size():
    """JPEGs are checked by a 1/8-scale decode: the size recorded is still
    the full decode's (EXIF orientation applied, as OpenCV does), and a
    JPEG that OpenCV cannot decode is still refused."""
    options = DownloadOptions()
    for body in (_rotated_jpeg(), scene(3)):
        full = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        kept, width, height = decode(body, options)
        assert kept == body and (height, width) == full.shape[:2]
    assert cv2.imdecode(np.frombuffer(_rotated_jpeg(), np.uint8),
                        cv2.IMREAD_COLOR).shape[:2] == (20, 40)
    good = scene(3)
    for broken in (good[:len(good) // 2], good[:600] + bytes(2000)):
        assert cv2.imdecode(np.frombuffer(broken, np.uint8),
                            cv2.IMREAD_COLOR) is None
        with pytest.raises(Refused, match='not an image'):
            decode(broken, options)


def test_requests_in_flight_and_urls_read_are_bounded(webs):
    """``threads`` requests at a time, and the next URL is read only when
    one finishes (a bucket's URLs are not all turned into requests at
    once)."""
    web, _ = webs
    pulled = []

    def urls():
        for index in range(40):
            pulled.append(index)
            yield index, web.base + '/ok.png'

    async def first_and_all():
        results = fetch_images(urls(), DownloadOptions(threads=4,
                                                       timeout=5))
        await results.__anext__()
        at_first = len(pulled)
        rest = [result async for _, result in results]
        return at_first, 1 + len(rest), {r['status'] for r in rest}
    at_first, count, statuses = asyncio.run(first_and_all())
    assert at_first == 4 and count == 40 and statuses == {'ok'}


def test_proxies_from_the_environment_are_used(webs, monkeypatch):
    """As urllib does, a proxy named in the environment carries the
    request (the host below does not resolve: only the proxy reaches
    it)."""
    web, _ = webs
    target = 'http://images.invalid/photo.png'
    proxy = Web({target: _answer(_png())})
    try:
        for name in ('no_proxy', 'NO_PROXY', 'HTTP_PROXY'):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv('http_proxy', proxy.base)
        result = download_image(target, FAST)
        assert result['status'] == 'ok' and result['image'] == _png()
        assert [path for path, _ in proxy.asked] == [target]
    finally:
        proxy.close()


def _bucket_rows(folder: str) -> dict:
    return {osp.basename(f): pq.read_table(f).to_pylist()
            for f in glob.glob(osp.join(folder, '*.parquet'))}


def test_one_table_and_several_give_the_same_unique_urls(tmp_path):
    """The single-table path (one task) and the split-then-deduplicate
    path give the same ``urls/`` buckets, and both the brute-force answer:
    each URL once, with its smallest key, in bucket crc32(url) % n."""
    rng = np.random.default_rng(0)
    rows = [dict(key=f'{k:04d}', url=f'http://h/{int(u)}.jpg',
                 text=f't{k}') for k, u in enumerate(
                     rng.integers(0, 30, 80))]
    rng.shuffle(rows)
    columns = ['key', 'url', 'text']
    one = str(tmp_path / 'one.parquet')
    _url_table(one, rows)
    os.makedirs(tmp_path / 'single')
    deduplicate_single_table(one, columns, str(tmp_path / 'single'), 4)
    split = str(tmp_path / 'split')
    for index, part in enumerate((rows[:50], rows[50:])):
        _url_table(tmp_path / f'part-{index}.parquet', part)
        split_url_table(str(tmp_path / f'part-{index}.parquet'), index,
                        columns, split, 4)
    os.makedirs(tmp_path / 'deduplicated')
    for folder in glob.glob(osp.join(split, 'bucket=*')):
        _deduplicate_bucket(folder, str(tmp_path / 'deduplicated' / (
            osp.basename(folder) + '.parquet')))
    smallest = {}
    for row in rows:
        if row['url'] not in smallest or row['key'] < \
                smallest[row['url']]['key']:
            smallest[row['url']] = row
    expected = {}
    for url in sorted(smallest):
        bucket = zlib.crc32(url.encode()) % 4
        expected.setdefault(f'bucket={bucket}.parquet', []).append(
            smallest[url])
    assert _bucket_rows(str(tmp_path / 'single')) == expected
    assert _bucket_rows(str(tmp_path / 'deduplicated')) == expected
