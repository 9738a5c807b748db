"""Stage 0: download the images of a web URL table, on Ray or on this
machine's processes.

Input: COYO-700M / LAION-style parquet tables with ``key``, ``url`` and
``text`` columns (``width`` and ``height`` where present). Output under
``out_dir``::

    buckets/bucket=K/         the input rows by a hash of their URL (while
                              deduplicating several tables)
    urls/bucket=K.parquet     a bucket with each URL once (the row with
                              the smallest key)
    images/bucket=K/*.parquet per bucket of urls/: key, url, text, status
                              ('ok' or the failure reason), image bytes,
                              width and height of the decoded image
    download_report.json      counts per status, images/s of the run

Each step is a task per file (a Ray task on a cluster, a process of a
local pool on one machine: :func:`~.sharded.task_runner`): one per input table
splits its rows into the buckets, one per bucket keeps each URL once, and
one per bucket downloads it (``threads`` requests in flight on asyncio,
:mod:`~gadms.corpus.web_fetch`) and writes its images row group by row
group into ``downloading/bucket=K/``, renamed into ``images/`` when the
bucket is complete: a re-run skips finished buckets, a killed driver loses
only the buckets in flight, and the task of a killed worker process runs
again. Tasks take one CPU each, so that a machine's few worker processes
run them all (starting a worker costs about a second of CPU), and the
images go from the task to the file without passing through the driver
or Ray's object store.

Requests are bounded as :mod:`~gadms.corpus.web_fetch` describes
(deadline, size cap, retries, redirects without private headers, pixel
cap). Originals are kept unless ``resize_max_side`` is set.
"""
import glob
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import asdict
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gadms.common.atomic import (atomic_folder, parquet_stream, write_json,
                                 write_parquet)
from .sharded import (TaskRunner, parquet_files, run_all, sorted_with_first,
                      stable_bucket, task_runner, value_counts)
from .web_fetch import DownloadOptions, fetch_images

URL_COLUMNS = ('key', 'url', 'text')
OPTIONAL_URL_COLUMNS = ('width', 'height')
# the columns a download adds to a URL row (width and height: decoded)
RESULT_FIELDS = (pa.field('status', pa.string()),
                 pa.field('image', pa.binary()),
                 pa.field('width', pa.int64()),
                 pa.field('height', pa.int64()))
# rows of an input table split at once (a 747M-row crawl is ~128 tables)
SPLIT_CHUNK_ROWS = 1 << 20
# a download task appends a row group every this many images or bytes
GROUP_ROWS = 256
GROUP_BYTES = 32 << 20


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


def _by_bucket(table: pa.Table, num_buckets: int
               ) -> Iterator[Tuple[int, pa.Table]]:
    """``(K, rows)`` for each hash bucket K that rows of ``table`` fall in
    (:func:`stable_bucket` of the URL: every copy of a URL lands in one
    bucket, whatever table it came from)."""
    bucket = stable_bucket(table['url'].to_pylist(), num_buckets)
    order = np.argsort(bucket, kind='stable')
    table, bucket = table.take(order), bucket[order]
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))
    for start, end in zip(starts, list(starts[1:]) + [len(bucket)]):
        yield int(bucket[start]), table.slice(start, end - start)


def split_url_table(file: str, index: int, columns: Sequence[str],
                    buckets: str, num_buckets: int) -> int:
    """Write the rows of URL table ``file`` (the ``index``-th input) into
    ``buckets/bucket=K/`` by their URL's bucket, ``SPLIT_CHUNK_ROWS`` rows
    at a time: each chunk's rows of a bucket are one file, written
    atomically under a name that a retried task writes again. Returns the
    row count. Runs as a task."""
    rows = 0
    for chunk, batch in enumerate(pq.ParquetFile(file).iter_batches(
            SPLIT_CHUNK_ROWS, columns=list(columns))):
        table = pa.Table.from_batches([batch])
        for bucket, part in _by_bucket(table, num_buckets):
            folder = osp.join(buckets, f'bucket={bucket}')
            os.makedirs(folder, exist_ok=True)
            write_parquet(part, osp.join(
                folder, f'table{index:06d}-{chunk:05d}.parquet'))
        rows += len(table)
    return rows


def deduplicate_single_table(file: str, columns: Sequence[str], urls: str,
                             num_buckets: int) -> int:
    """The lighter path for one table that is read at once (at most
    ``SPLIT_CHUNK_ROWS`` rows): its buckets, each URL once, written
    straight to ``urls/bucket=K.parquet`` without the ``buckets/`` step.
    Returns the row count. Runs as a task."""
    table = pq.read_table(file, columns=list(columns), partitioning=None)
    for bucket, rows in _by_bucket(table, num_buckets):
        write_parquet(_first_row_per_url(rows),
                      osp.join(urls, f'bucket={bucket}.parquet'))
    return len(table)


def _first_row_per_url(table: pa.Table) -> pa.Table:
    """Rows of ``table`` with a URL not seen before in it, the smallest key
    first (the table holds every row of its URLs: one bucket)."""
    table, first = sorted_with_first(table, 'url', 'key')
    return table.filter(pa.array(first))


def _deduplicate_bucket(folder: str, target: str) -> int:
    """The bucket's rows with each URL once (smallest key), written to
    ``target`` atomically; returns the row count. Runs as a task."""
    files = sorted(glob.glob(osp.join(folder, '*.parquet')))
    table = _first_row_per_url(pa.concat_tables(
        pq.read_table(f, partitioning=None) for f in files))
    write_parquet(table, target)
    return len(table)


def deduplicate_urls(inputs: Sequence[str], out_dir: str, num_buckets: int,
                     run_tasks: TaskRunner) -> None:
    """Write ``out_dir/urls/bucket=K.parquet``: the rows of the URL tables
    ``inputs`` by a hash of their URL, each URL once (the row with the
    smallest key). The folder is built whole and renamed, so a re-run
    skips it when it exists.

    Several tables, or one too large to read at once, are split by a task
    per table into ``out_dir/buckets/bucket=K/`` (also renamed into place
    when whole, and removed once ``urls/`` is), then deduplicated by a task
    per bucket; one table of at most ``SPLIT_CHUNK_ROWS`` rows takes one
    task (:func:`deduplicate_single_table`).
    """
    columns = list(URL_COLUMNS) + [
        c for c in OPTIONAL_URL_COLUMNS
        if c in pq.read_schema(inputs[0]).names]
    buckets = osp.join(out_dir, 'buckets')
    with atomic_folder(osp.join(out_dir, 'urls')) as part:
        if len(inputs) == 1 and not osp.isdir(buckets) and pq.read_metadata(
                inputs[0]).num_rows <= SPLIT_CHUNK_ROWS:
            run_all(run_tasks, deduplicate_single_table,
                    [(inputs[0], columns, part, num_buckets)])
        else:
            if not osp.isdir(buckets):
                with atomic_folder(buckets) as split_part:
                    run_all(run_tasks, split_url_table, [
                        (file, index, columns, split_part, num_buckets)
                        for index, file in enumerate(inputs)])
            run_all(run_tasks, _deduplicate_bucket, [
                (folder, osp.join(part, osp.basename(folder) + '.parquet'))
                for folder in sorted(glob.glob(osp.join(buckets,
                                                        'bucket=*')))])
    shutil.rmtree(buckets, ignore_errors=True)


def download_schema(urls: pa.Schema) -> pa.Schema:
    """The schema of a bucket's images: its URL rows' columns (without
    ``width`` and ``height``) and :data:`RESULT_FIELDS`."""
    return pa.schema([f for f in urls if f.name not in
                      OPTIONAL_URL_COLUMNS] + list(RESULT_FIELDS))


def _result_rows(urls: pa.Table, results: list,
                 schema: pa.Schema) -> pa.Table:
    """The rows of ``urls`` at the indices of ``results`` (``(index,
    fetch result)`` pairs) with the results' columns, in ``schema``."""
    rows = urls.take([index for index, _ in results])
    return pa.table([rows[f.name] for f in schema if f not in RESULT_FIELDS]
                    + [pa.array([r[f.name] for _, r in results], f.type)
                       for f in RESULT_FIELDS], schema=schema)


async def _download_into(urls: pa.Table, options: DownloadOptions,
                         append) -> None:
    """Fetch every URL of ``urls``, appending the finished rows a group
    (``GROUP_ROWS`` images or ``GROUP_BYTES``) at a time."""
    schema = download_schema(urls.schema)
    results, size = [], 0
    async for index, result in fetch_images(
            enumerate(urls['url'].to_pylist()), options):
        results.append((index, result))
        size += len(result['image'] or b'')
        if len(results) >= GROUP_ROWS or size >= GROUP_BYTES:
            append(_result_rows(urls, results, schema))
            results, size = [], 0
    if results:
        append(_result_rows(urls, results, schema))


def download_bucket(url_file: str, target: str, work: str,
                    options: DownloadOptions) -> int:
    """Download the URLs of one bucket's file into ``target/part-0.parquet``
    (built in the folder ``work``, renamed to ``target`` when complete);
    returns the number of URLs. Runs as a task (Ray, or a local pool)."""
    import asyncio
    urls = pq.read_table(url_file, partitioning=None)
    for folder in (work, target):
        os.makedirs(osp.dirname(folder), exist_ok=True)
    with atomic_folder(target, part=work) as part:
        with parquet_stream(osp.join(part, 'part-0.parquet'),
                            download_schema(urls.schema)) as append:
            asyncio.run(_download_into(urls, options, append))
    return len(urls)


def _report(inputs: str, urls: str, images: str, pending: List[str],
            seconds: float, options: DownloadOptions) -> dict:
    def rows(files):
        return sum(pq.read_metadata(f).num_rows for f in files)
    every = sorted(glob.glob(osp.join(urls, 'bucket=*.parquet')))
    input_rows, unique = rows(url_tables(inputs)), rows(every)
    downloaded = rows(pending)
    return dict(
        input_rows=input_rows, duplicate_urls=input_rows - unique,
        urls=unique, status=value_counts(parquet_files(images), 'status'),
        downloaded_this_run=downloaded,
        finished_before=unique - downloaded,
        seconds_this_run=round(seconds, 2),
        urls_per_s_this_run=round(downloaded / seconds, 2)
        if seconds else None,
        options={k: v for k, v in asdict(options).items()
                 if k != 'headers'})


def run_download_stage(inputs: str, out_dir: str,
                       options: DownloadOptions = DownloadOptions(),
                       concurrency: int = 2,
                       num_partitions: int = 16,
                       progress_file: Optional[object] = None,
                       pool: str = 'ray') -> dict:
    """Download every URL of the tables matching ``inputs`` into
    ``out_dir`` (layout in the module docstring) and return the report.

    Args:
        inputs (str): Folder, glob or file of parquet URL tables.
        out_dir (str): Output folder; a re-run resumes there.
        options (DownloadOptions): Per-request settings.
        concurrency (int): Tasks at a time (each takes a CPU and keeps
            ``options.threads`` requests in flight).
        num_partitions (int): URL hash buckets (the unit of resumption and
            of a task): for 747M URLs, thousands.
        progress_file (file, optional): Where the progress over the URLs
            is shown (default: standard error).
        pool (str): ``'ray'``: Ray tasks (a cluster, or a local Ray the
            caller started); ``'local'``: ``concurrency`` processes on this
            machine, without Ray (:func:`~.sharded.task_runner`).
    """
    from gadms.common.progress import Progress
    run_tasks = task_runner(pool, concurrency)
    os.makedirs(out_dir, exist_ok=True)
    urls = osp.join(out_dir, 'urls')
    if not osp.isdir(urls):
        deduplicate_urls(url_tables(inputs), out_dir, num_partitions,
                         run_tasks)
    images = osp.join(out_dir, 'images')
    os.makedirs(images, exist_ok=True)
    # bucket K: urls/bucket=K.parquet -> images/bucket=K/
    buckets = [osp.basename(f)[:-len('.parquet')] for f in sorted(
        glob.glob(osp.join(urls, 'bucket=*.parquet')))]
    pending = [b for b in buckets if not osp.isdir(osp.join(images, b))]
    progress = Progress(sum(pq.read_metadata(osp.join(
        urls, b + '.parquet')).num_rows for b in pending),
        'downloading URLs', file=progress_file or sys.stderr)
    start = time.monotonic()
    for count in run_tasks(download_bucket, [
            (osp.join(urls, b + '.parquet'), osp.join(images, b),
             osp.join(out_dir, 'downloading', b), options)
            for b in pending]):
        progress.update(count)
    progress.close()
    report = _report(inputs, urls, images, [
        osp.join(urls, b + '.parquet') for b in pending],
        time.monotonic() - start, options)
    write_json(osp.join(out_dir, 'download_report.json'), report, indent=1)
    return report
