"""Stage 0: download the images of a web URL table on Ray Data.

Input: COYO-700M / LAION-style parquet tables with ``key``, ``url`` and
``text`` columns (``width`` and ``height`` where present). Output under
``out_dir``::

    urls/*.parquet            the table with each URL once (the row with
                              the smallest key), hash-partitioned by URL
    images/<part>/*.parquet   per part of urls/: key, url, text, status
                              ('ok' or the failure reason), image bytes,
                              width and height of the decoded image
    download_report.json      counts per status, images/s of the run

Each part of ``urls/`` is downloaded by one Ray Data pipeline (an actor
pool of :class:`ImageDownloader`, each running ``threads`` requests at a
time), written to a temporary folder and renamed into ``images/``: a re-run
skips finished parts, and a killed driver leaves no half-written part. Ray
retries the tasks of a killed worker process.

Every request has a deadline for the whole answer and a size cap, transient
failures (HTTP 429 and 5xx, timeouts, dropped connections) are retried, at
most ``max_redirects`` redirects are followed and extra headers (e.g. an
``Authorization`` for a private mirror) are never sent to another origin,
only ``http`` and ``https`` URLs are fetched, and an image whose header
declares more than ``max_pixels`` pixels is not decoded. Originals are kept
unless ``resize_max_side`` is set.
"""
import glob
import json
import os
import os.path as osp
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.datasets.transforms.loading import (DEFAULT_MAX_PIXELS,
                                               ImageLoadError,
                                               check_decoded_size)
from .bounded_http import AnswerTooLarge, read_bounded

URL_COLUMNS = ('key', 'url', 'text')
OPTIONAL_URL_COLUMNS = ('width', 'height')
# headers that identify the requester: kept only on the URL's own origin
PRIVATE_HEADERS = ('authorization', 'cookie', 'proxy-authorization')


@dataclass
class DownloadOptions:
    """How each image is fetched.

    Args:
        timeout (float): Seconds for a whole request, connection to last
            byte.
        max_bytes (int): Largest answer read.
        retries (int): Further attempts after a transient failure, waiting
            ``backoff * 2 ** attempt`` seconds between them.
        max_redirects (int): Redirects followed per request.
        max_pixels (int): Largest image decoded (width x height, read from
            the encoded header first).
        resize_max_side (int, optional): Shrink images whose longer side
            exceeds this (re-encoded as JPEG, quality 95); None keeps the
            originals.
        headers (dict): Extra request headers; ``Authorization`` and
            cookies are dropped when a redirect leaves the URL's origin.
        threads (int): Requests in flight per downloader actor.
    """

    timeout: float = 10.0
    max_bytes: int = 20 << 20
    retries: int = 2
    backoff: float = 0.5
    max_redirects: int = 3
    max_pixels: int = DEFAULT_MAX_PIXELS
    resize_max_side: Optional[int] = None
    headers: Dict[str, str] = field(default_factory=dict)
    threads: int = 16
    user_agent: str = 'gadms-corpus-downloader (research; +robots honoured)'


class _Refused(ValueError):
    """A request that retrying cannot fix (its status says why)."""


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname or '', parts.port


class _BoundedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most ``max_redirections`` redirects, only to http(s), and
    drop private headers when the redirect leaves the origin."""

    def __init__(self, max_redirects: int) -> None:
        self.max_redirections = max_redirects

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ('http', 'https'):
            raise _Refused('redirect to a non-http URL')
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in PRIVATE_HEADERS:
                    del new.headers[name]
        return new

    def http_error_302(self, req, fp, code, msg, headers):
        # urllib counts redirects in req.redirect_dict; past the limit it
        # raises an HTTPError whose text says so
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except urllib.error.HTTPError as err:
            if 'redirect' in str(err.msg).lower():
                raise _Refused('too many redirects') from err
            raise

    http_error_301 = http_error_303 = http_error_307 = http_error_302
    http_error_308 = http_error_302


def fetch(url: str, options: DownloadOptions) -> bytes:
    """The body at ``url`` under ``options`` (one attempt).

    Raises:
        _Refused, urllib.error.HTTPError, TimeoutError, AnswerTooLarge,
        OSError: see :func:`download_image` for the status of each.
    """
    if urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
        raise _Refused('not an http(s) URL')
    opener = urllib.request.build_opener(
        _BoundedRedirects(options.max_redirects))
    request = urllib.request.Request(url, headers={
        'User-Agent': options.user_agent, **options.headers})
    deadline = time.monotonic() + options.timeout
    with opener.open(request, timeout=options.timeout) as response:
        return read_bounded(response, deadline, options.max_bytes)


def _transient(err: Exception) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code == 429 or err.code >= 500
    return isinstance(err, (TimeoutError, OSError)) and not isinstance(
        err, AnswerTooLarge)


def _status(err: Exception) -> str:
    if isinstance(err, _Refused):
        return str(err)
    if isinstance(err, urllib.error.HTTPError):
        return f'http {err.code}'
    if isinstance(err, AnswerTooLarge):
        return 'too large'
    if isinstance(err, TimeoutError) or 'timed out' in str(err):
        return 'timeout'
    return 'connection error'


def _decode(body: bytes, options: DownloadOptions
            ) -> Tuple[bytes, int, int]:
    """Check and decode the body: (bytes to keep, width, height)."""
    check_decoded_size(body, options.max_pixels, 'image')
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise _Refused('not an image')
    height, width = image.shape[:2]
    side = options.resize_max_side
    if side and max(height, width) > side:
        scale = side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)),
                                   max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        body = cv2.imencode('.jpg', image,
                            [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    return body, width, height


def download_image(url: str, options: DownloadOptions) -> dict:
    """Fetch and check one image: ``dict(status, image, width, height)``;
    ``status`` is ``'ok'`` or the reason of the failure (``http 404``,
    ``timeout``, ``too large``, ``not an image``, ``oversized image``,
    ``too many redirects``, ``connection error``...)."""
    failed = dict(image=None, width=None, height=None)
    for attempt in range(options.retries + 1):
        if attempt:
            time.sleep(options.backoff * 2**(attempt - 1))
        try:
            body = fetch(url, options)
            break
        except Exception as err:  # urllib and sockets raise many kinds
            if not _transient(err) or attempt == options.retries:
                return dict(failed, status=_status(err))
    try:
        image, width, height = _decode(body, options)
    except ImageLoadError:
        return dict(failed, status='oversized image')
    except _Refused as err:
        return dict(failed, status=str(err))
    return dict(status='ok', image=image, width=width, height=height)


class ImageDownloader:
    """A Ray Data ``map_batches`` callable: downloads a batch of URLs with
    ``options.threads`` requests in flight, adding ``status``, ``image``
    (bytes), ``width`` and ``height`` to the batch."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self.pool = ThreadPoolExecutor(options.threads)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, list]:
        results = list(self.pool.map(
            lambda url: download_image(str(url), self.options),
            batch['url']))
        out = {name: list(values) for name, values in batch.items()
               if name not in ('width', 'height')}
        for name in ('status', 'image', 'width', 'height'):
            out[name] = [result[name] for result in results]
        return out


def url_tables(pattern: str) -> List[str]:
    """Parquet files of a folder (recursive), a glob or one file, sorted."""
    if osp.isdir(pattern):
        pattern = osp.join(pattern, '**', '*.parquet')
    files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise FileNotFoundError(f'no parquet URL tables match {pattern}')
    for file in files:
        names = pq.read_schema(file).names
        missing = [c for c in URL_COLUMNS if c not in names]
        if missing:
            raise ValueError(f'{file}: URL table without column(s) '
                             f'{missing} (has {names})')
    return files


def _first_row_per_url(table: pa.Table) -> pa.Table:
    """Rows of ``table`` with a URL not seen before in it, the smallest key
    first (the table holds every row of its URLs: hash-partitioned)."""
    table = table.sort_by([('url', 'ascending'), ('key', 'ascending')])
    urls = table['url'].to_numpy(zero_copy_only=False)
    first = np.ones(len(urls), dtype=bool)
    first[1:] = urls[1:] != urls[:-1]
    return table.filter(pa.array(first))


def deduplicate_urls(inputs: Sequence[str], out_folder: str,
                     num_partitions: int) -> None:
    """Write the URL tables with each URL once into ``out_folder``: a
    hash partition by URL (Ray Data's shuffle), then the smallest key per
    URL within each partition; written to a temporary folder and renamed."""
    import ray.data
    columns = list(URL_COLUMNS) + [
        c for c in OPTIONAL_URL_COLUMNS
        if c in pq.read_schema(inputs[0]).names]
    part = out_folder + '.part'
    shutil.rmtree(part, ignore_errors=True)
    (ray.data.read_parquet(list(inputs), columns=columns)
     .repartition(num_partitions, keys=['url'])
     .map_batches(_first_row_per_url, batch_format='pyarrow',
                  batch_size=None)
     .write_parquet(part))
    os.replace(part, out_folder)


def _download_part(source: str, target: str, options: DownloadOptions,
                   concurrency: int, batch_size: int) -> None:
    import ray.data
    part = target + '.part'
    shutil.rmtree(part, ignore_errors=True)
    (ray.data.read_parquet(source)
     .map_batches(ImageDownloader, fn_constructor_kwargs=dict(
         options=options), concurrency=concurrency, batch_size=batch_size)
     .write_parquet(part))
    os.replace(part, target)


def status_counts(folder: str) -> Dict[str, int]:
    """How many rows of the download output in ``folder`` have each
    status (read from the ``status`` column alone)."""
    counts: Dict[str, int] = {}
    files = sorted(glob.glob(osp.join(folder, '*', '*.parquet')))
    for file in files:
        column = pq.read_table(file, columns=['status'])['status']
        for item in pc.value_counts(column).to_pylist():
            counts[item['values']] = counts.get(item['values'], 0) + \
                item['counts']
    return dict(sorted(counts.items()))


def run_download_stage(inputs: str, out_dir: str,
                       options: DownloadOptions = DownloadOptions(),
                       concurrency: int = 2, batch_size: int = 64,
                       num_partitions: int = 16) -> dict:
    """Download every URL of the tables matching ``inputs`` into
    ``out_dir`` (layout in the module docstring) and return the report.

    Args:
        inputs (str): Folder, glob or file of parquet URL tables.
        out_dir (str): Output folder; a re-run resumes there.
        options (DownloadOptions): Per-request settings.
        concurrency (int): Downloader actors.
        batch_size (int): URLs per batch handed to an actor.
        num_partitions (int): Parts of the deduplicated URL table (the
            unit of resumption).
    """
    os.makedirs(out_dir, exist_ok=True)
    urls = osp.join(out_dir, 'urls')
    if not osp.isdir(urls):
        deduplicate_urls(url_tables(inputs), urls, num_partitions)
    images = osp.join(out_dir, 'images')
    os.makedirs(images, exist_ok=True)
    start, done_before = time.monotonic(), 0
    downloaded = 0
    for source in sorted(glob.glob(osp.join(urls, '*.parquet'))):
        target = osp.join(images, osp.basename(source)[:-len('.parquet')])
        rows = pq.read_metadata(source).num_rows
        if osp.isdir(target):
            done_before += rows
            continue
        _download_part(source, target, options, concurrency, batch_size)
        downloaded += rows
    seconds = time.monotonic() - start
    input_rows = sum(pq.read_metadata(f).num_rows
                     for f in url_tables(inputs))
    unique = sum(pq.read_metadata(f).num_rows
                 for f in glob.glob(osp.join(urls, '*.parquet')))
    report = dict(
        input_rows=input_rows, duplicate_urls=input_rows - unique,
        urls=unique, status=status_counts(images),
        downloaded_this_run=downloaded, finished_before=done_before,
        seconds_this_run=round(seconds, 2),
        urls_per_s_this_run=round(downloaded / seconds, 2)
        if seconds else None,
        options={k: v for k, v in asdict(options).items()
                 if k != 'headers'})
    part = osp.join(out_dir, 'download_report.json.part')
    with open(part, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    os.replace(part, osp.join(out_dir, 'download_report.json'))
    return report
