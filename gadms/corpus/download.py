"""Stage 0: download the images of a web URL table on Ray Data.

Input: COYO-700M / LAION-style parquet tables with ``key``, ``url`` and
``text`` columns (``width`` and ``height`` where present). Output under
``out_dir``::

    buckets/bucket=K/         the input rows by a hash of their URL
    urls/bucket=K.parquet     a bucket with each URL once (the row with
                              the smallest key)
    images/<part>/*.parquet   per part of urls/: key, url, text, status
                              ('ok' or the failure reason), image bytes,
                              width and height of the decoded image
    download_report.json      counts per status, images/s of the run

Buckets are downloaded ``shards_per_run`` at a time by one Ray Data
pipeline (reader tasks streaming each bucket's URLs into a pool of
:func:`download_batch` tasks, each running ``threads`` requests at a time),
written to a temporary folder and each bucket renamed into ``images/``
(:func:`~gadms.corpus.sharded.run_shard_groups`): a re-run skips finished
buckets, and a killed driver leaves no half-written one.
Ray retries the tasks of a killed worker process.

Every request has a deadline for the whole answer and a size cap, transient
failures (HTTP 429 and 5xx, timeouts, dropped connections) are retried, at
most ``max_redirects`` redirects are followed and extra headers (e.g. an
``Authorization`` for a private mirror) are never sent to another origin,
only ``http`` and ``https`` URLs are fetched, and an image whose header
declares more than ``max_pixels`` pixels is not decoded. Originals are kept
unless ``resize_max_side`` is set.
"""
import glob
import os
import os.path as osp
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gadms.common.atomic import atomic_folder, write_json, write_parquet
from gadms.common.image_limits import (DEFAULT_MAX_PIXELS, ImageLoadError,
                                       check_decoded_size)
from .bounded_http import AnswerTooLarge, read_bounded
from .sharded import (IO_CPUS, TASK_RETRY_ARGS, over_shards, parquet_files,
                      run_shard_groups, sorted_with_first, stable_bucket,
                      value_counts, write_ray_parquet)

URL_COLUMNS = ('key', 'url', 'text')
OPTIONAL_URL_COLUMNS = ('width', 'height')
# headers that identify the requester: kept only on the URL's own origin
PRIVATE_HEADERS = ('authorization', 'cookie', 'proxy-authorization')
# the file of a bucket without rows (its key type is the URL table's)
DOWNLOAD_SCHEMA = pa.schema([('key', pa.string()), ('url', pa.string()),
                             ('text', pa.string()), ('status', pa.string()),
                             ('image', pa.binary()), ('width', pa.int64()),
                             ('height', pa.int64())])


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
        threads (int): Requests in flight per download task.
        user_agent (str): The ``User-Agent`` sent (name your crawler and a
            contact for the sites you fetch from).
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
    user_agent: str = 'gadms-corpus-downloader (research dataset builder)'


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
        # urllib counts redirects in req.redirect_dict and checks the new
        # URL's scheme; it refuses with an HTTPError whose text says which
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except urllib.error.HTTPError as err:
            text = str(err.msg)
            if 'infinite loop' in text:
                raise _Refused('too many redirects') from err
            if 'is not allowed' in text:
                raise _Refused('redirect to a non-http URL') from err
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


def download_batch(batch: Dict[str, np.ndarray],
                   options: DownloadOptions) -> Dict[str, list]:
    """A Ray Data ``map_batches`` function: downloads a batch of URLs with
    ``options.threads`` requests in flight, adding ``status``, ``image``
    (bytes), ``width`` and ``height`` to the batch. A task, not an actor:
    it holds no model, and a task gives its CPU back between batches."""
    with ThreadPoolExecutor(options.threads) as pool:
        results = list(pool.map(
            lambda url: download_image(str(url), options), batch['url']))
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


def read_url_rows(batch: Dict[str, np.ndarray], urls: str,
                  batch_size: int) -> Iterator[pa.Table]:
    """For the bucket in ``batch`` (one row, ``shard``), the rows of its
    deduplicated URL file with a ``shard`` column, ``batch_size`` at a
    time."""
    shard = batch['shard'][0]
    for chunk in pq.ParquetFile(osp.join(urls, f'bucket={shard}.parquet')
                                ).iter_batches(batch_size):
        chunk = pa.Table.from_batches([chunk])
        yield chunk.append_column(
            'shard', pa.array([shard] * len(chunk), pa.string()))


def _download_pipeline(group: List[str], urls: str, options: DownloadOptions,
                       concurrency: int, batch_size: int):
    """The Ray Data dataset of the download of the buckets ``group``: reader
    tasks stream each bucket's URL file, download tasks fetch them."""
    import ray.data
    tasks = ray.data.TaskPoolStrategy(size=concurrency)
    return over_shards(group).map_batches(
        read_url_rows, batch_size=1, num_cpus=IO_CPUS, compute=tasks,
        fn_kwargs=dict(urls=urls, batch_size=batch_size),
        **TASK_RETRY_ARGS).map_batches(
        download_batch, fn_kwargs=dict(options=options), compute=tasks,
        batch_size=batch_size, num_cpus=IO_CPUS, **TASK_RETRY_ARGS)


def _with_bucket(table: pa.Table, num_buckets: int) -> pa.Table:
    """``table`` with a ``bucket`` column: a stable hash of the URL modulo
    ``num_buckets`` (the same URL lands in the same bucket in any process
    and run)."""
    return table.append_column('bucket', pa.array(
        stable_bucket(table['url'].to_pylist(), num_buckets)))


def _first_row_per_url(table: pa.Table) -> pa.Table:
    """Rows of ``table`` with a URL not seen before in it, the smallest key
    first (the table holds every row of its URLs: one bucket)."""
    table, first = sorted_with_first(table, 'url', 'key')
    return table.filter(pa.array(first))


def bucket_urls(inputs: Sequence[str], out_folder: str,
                num_buckets: int) -> None:
    """Write the rows of the URL tables into ``out_folder/bucket=K/`` by a
    hash of their URL (Ray Data tasks, ``write_parquet`` partitioned by
    bucket), so that every copy of a URL is in one bucket; written to a
    temporary folder and renamed."""
    import ray.data
    columns = list(URL_COLUMNS) + [
        c for c in OPTIONAL_URL_COLUMNS
        if c in pq.read_schema(inputs[0]).names]
    with atomic_folder(out_folder) as part:
        write_ray_parquet(
            ray.data.read_parquet(list(inputs), columns=columns,
                                  num_cpus=IO_CPUS)
            .map_batches(_with_bucket, batch_format='pyarrow',
                         fn_kwargs=dict(num_buckets=num_buckets),
                         num_cpus=IO_CPUS, **TASK_RETRY_ARGS),
            part, partition_cols=['bucket'])


def _deduplicate_bucket(folder: str, target: str) -> int:
    """The bucket's rows with each URL once (smallest key), written to
    ``target`` atomically; returns the row count. Runs as a Ray task."""
    files = sorted(glob.glob(osp.join(folder, '*.parquet')))
    table = _first_row_per_url(pa.concat_tables(
        pq.read_table(f) for f in files))
    write_parquet(table, target)
    return len(table)


def _bucket_urls(urls: str, bucket_folder: str) -> str:
    return osp.join(urls, osp.basename(bucket_folder) + '.parquet')


def run_download_stage(inputs: str, out_dir: str,
                       options: DownloadOptions = DownloadOptions(),
                       concurrency: int = 2, batch_size: int = 64,
                       num_partitions: int = 16,
                       shards_per_run: int = 16) -> dict:
    """Download every URL of the tables matching ``inputs`` into
    ``out_dir`` (layout in the module docstring) and return the report.

    Args:
        inputs (str): Folder, glob or file of parquet URL tables.
        out_dir (str): Output folder; a re-run resumes there.
        options (DownloadOptions): Per-request settings.
        concurrency (int): Download tasks at a time.
        batch_size (int): URLs per download task.
        num_partitions (int): URL hash buckets (the unit of
            resumption): for 747M URLs, thousands.
        shards_per_run (int): Buckets per Ray Data pipeline (what a killed
            driver loses).
    """
    import ray
    os.makedirs(out_dir, exist_ok=True)
    buckets = osp.join(out_dir, 'buckets')
    if not osp.isdir(buckets):
        bucket_urls(url_tables(inputs), buckets, num_partitions)
    urls = osp.join(out_dir, 'urls')
    os.makedirs(urls, exist_ok=True)
    deduplicate = ray.remote(num_cpus=IO_CPUS,
                             **TASK_RETRY_ARGS)(_deduplicate_bucket)
    pending = [folder for folder in sorted(glob.glob(osp.join(
        buckets, 'bucket=*'))) if not osp.exists(_bucket_urls(urls, folder))]
    ray.get([deduplicate.remote(folder, _bucket_urls(urls, folder))
             for folder in pending])
    images = osp.join(out_dir, 'images')
    os.makedirs(images, exist_ok=True)
    # shard K is the bucket of urls/bucket=K.parquet and images/bucket=K/
    buckets = sorted(osp.basename(f)[len('bucket='):-len('.parquet')]
                     for f in glob.glob(osp.join(urls, 'bucket=*.parquet')))
    pending = [b for b in buckets
               if not osp.isdir(osp.join(images, f'bucket={b}'))]
    start = time.monotonic()
    run_shard_groups(pending, partial(
        _download_pipeline, urls=urls, options=options,
        concurrency=concurrency, batch_size=batch_size),
        lambda bucket: osp.join(images, f'bucket={bucket}'),
        DOWNLOAD_SCHEMA, osp.join(out_dir, 'images.part'), shards_per_run)
    seconds = time.monotonic() - start

    def rows(bucket_names):
        return sum(pq.read_metadata(osp.join(
            urls, f'bucket={b}.parquet')).num_rows for b in bucket_names)
    downloaded = rows(pending)
    done_before = rows(buckets) - downloaded
    input_rows = sum(pq.read_metadata(f).num_rows
                     for f in url_tables(inputs))
    unique = sum(pq.read_metadata(f).num_rows
                 for f in glob.glob(osp.join(urls, '*.parquet')))
    report = dict(
        input_rows=input_rows, duplicate_urls=input_rows - unique,
        urls=unique, status=value_counts(parquet_files(images), 'status'),
        downloaded_this_run=downloaded, finished_before=done_before,
        seconds_this_run=round(seconds, 2),
        urls_per_s_this_run=round(downloaded / seconds, 2)
        if seconds else None,
        options={k: v for k, v in asdict(options).items()
                 if k != 'headers'})
    write_json(osp.join(out_dir, 'download_report.json'), report, indent=1)
    return report
