"""What the corpus stages share: shards renamed into place, hash buckets,
tasks at a bounded concurrency (on Ray or a local pool), reports.

A stage's unit of work is a *shard* (a part of its input: a download
bucket, a slice of a folder listing). :func:`run_shard_groups` runs one Ray
Data pipeline per group of pending shards, writes its rows partitioned by
shard into a temporary folder and then renames each shard's folder into
place. A shard's folder therefore exists only when all its rows were
written: a re-run skips it, and a killed driver leaves no half-written
shard behind (the temporary folder is cleared by the next run).
:func:`commit_shards_as_they_finish` commits each shard as soon as its
rows are in. :func:`bounded_tasks` and :func:`local_process_tasks` run
plain tasks (the download's), on Ray or on this machine's processes.
"""
import glob
import os
import os.path as osp
import shutil
import sys
import warnings
import zlib
from functools import partial
from typing import (Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple)

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.common.atomic import atomic_folder, write_parquet

# CPUs reserved per read, write or network task: their threads mostly wait
# on the disk or the network, so several share a CPU
IO_CPUS = 0.25
# Ray's retries of the work of a worker process that died (killed, out of
# memory, a crashing decoder); finite, so that a row which kills every
# worker that touches it fails the run instead of looping for ever
WORKER_RETRIES = 3
TASK_RETRY_ARGS = dict(max_retries=WORKER_RETRIES)
ACTOR_RETRY_ARGS = dict(max_restarts=WORKER_RETRIES,
                        max_task_retries=WORKER_RETRIES)
# prctl's option: the signal a process gets when its parent ends
PR_SET_PDEATHSIG = 1
# mallopt's option: the most malloc arenas (heaps) a process's threads share
M_ARENA_MAX = -8
# What the driver's memory grew with (docs/benchmarks.md, issue #38):
# - Ray's core worker and each Ray Data pipeline start threads, and glibc
#   gives threads arenas of their own (up to 8 per core); memory freed in
#   one stays there: the driver grew by 2 MiB per pipeline of 160 tasks,
#   by 0.2 MiB with two arenas.
# - Ray keeps each process's task status events in a ring buffer, flushed
#   to the GCS every second, whose pages become resident as it first fills:
#   7 MiB after about 1,600 tasks with Ray's default of 10,000 events, 0.7
#   MiB with 1,000 (a driver submits far fewer than 1,000 events a second;
#   only the dashboard's task list would miss the excess).
DRIVER_MALLOC_ARENAS = 2
DRIVER_RAY_ENV = dict(
    RAY_task_events_max_num_status_events_buffer_on_worker='1000')
# The workers' environment for the corpus stages (a cluster's job:
# ``ray.init(..., runtime_env=CORPUS_RUNTIME_ENV)``; a Ray or a pool of
# processes started by the CLI: its own environment, which they inherit),
# so that a worker's memory does not grow with the corpus
# (docs/benchmarks.md). Arrow's default allocator in
# the pyarrow wheels (mimalloc) kept what the many threads of a download
# task freed: a worker that ran the downloads of 20,000 images held 299 MiB
# with it, 149 MiB with the C library's allocator. glibc, in turn, raises
# its mmap threshold after freeing a large block and then serves image-
# sized buffers from a heap that fragments; a fixed threshold returns them
# to the system (132 MiB; the export's worst worker 84 instead of 196-252
# MiB over its imports in test_export.py's memory test).
CORPUS_RUNTIME_ENV = dict(env_vars=dict(ARROW_DEFAULT_MEMORY_POOL='system',
                                        MALLOC_MMAP_THRESHOLD_='131072'))
# Ray 2.60 warns that remote arguments given to map_batches are deprecated
# in favour of named ones, but has no named retry limits: keep them
# (ray[data] is pinned) without a warning per pipeline
warnings.filterwarnings('ignore', message='`ray_remote_args` is deprecated',
                        module=r'gadms\.corpus\.')


def parquet_files(folder: str, depth: int = 1) -> List[str]:
    """Sorted ``*.parquet`` files ``depth`` folders below ``folder``."""
    return sorted(glob.glob(osp.join(folder, *['*'] * depth, '*.parquet')))


def value_counts(files: Iterable[str], column: str) -> Dict[str, int]:
    """How many rows of ``files`` hold each value of ``column`` (read from
    that column alone)."""
    counts: Dict[str, int] = {}
    for file in files:
        values = pq.read_table(file, columns=[column],
                               partitioning=None)[column]
        for item in pc.value_counts(values).to_pylist():
            counts[item['values']] = counts.get(item['values'], 0) + \
                item['counts']
    return dict(sorted(counts.items(), key=lambda kv: str(kv[0])))


def stable_bucket(texts: Sequence[str], num_buckets: int) -> np.ndarray:
    """A hash of each text modulo ``num_buckets``, the same in every
    process and run (Python's ``hash`` of a str is salted per process)."""
    return np.fromiter((zlib.crc32(t.encode()) % num_buckets
                        for t in texts), np.int32, len(texts))


def sorted_with_first(table: pa.Table, key: str, order: str
                      ) -> Tuple[pa.Table, np.ndarray]:
    """``table`` sorted by ``(key, order)`` and a mask of its rows that come
    first among those with the same ``key``. ``table`` must hold every row
    of its keys (one hash bucket): a groupby that keeps the smallest
    ``order`` per key."""
    table = table.sort_by([(key, 'ascending'), (order, 'ascending')])
    values = table[key].to_numpy(zero_copy_only=False)
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return table, first


def write_ray_parquet(dataset, folder: str, **kwargs) -> None:
    """``dataset.write_parquet(folder)`` by write tasks of a quarter CPU
    that Ray retries when their worker dies."""
    dataset.write_parquet(folder, ray_remote_args=dict(num_cpus=IO_CPUS,
                                                       **TASK_RETRY_ARGS),
                          **kwargs)


def over_shards(shards: Sequence[str]):
    """A Ray Data dataset with one row (``shard``) per shard and one block
    per row, so that each shard is one task of the maps that follow."""
    import ray.data
    return ray.data.from_items([dict(shard=s) for s in shards],
                               override_num_blocks=max(1, len(shards)))


# CPUs per plain task (the download's, the export's): one task keeps a core
# busy, and a machine's few worker processes run them all (starting a Ray
# worker costs about a second of CPU)
TASK_CPUS = 1
# run_tasks(function, calls): each call's result as it finishes
TaskRunner = Callable[[Callable, Sequence[tuple]], Iterator]


def task_runner(pool: str, concurrency: int) -> TaskRunner:
    """Where a stage's plain tasks run, ``concurrency`` at a time:
    ``'ray'`` (Ray tasks of ``TASK_CPUS``, on the Ray the caller started
    or joined, retried when their worker dies) or ``'local'``
    (:func:`local_process_tasks`, no Ray)."""
    if pool == 'ray':
        import ray

        def on_ray(function, calls):
            return bounded_tasks(ray.remote(num_cpus=TASK_CPUS,
                                            **TASK_RETRY_ARGS)(function),
                                 calls, concurrency)
        return on_ray
    if pool == 'local':
        return partial(local_process_tasks, processes=concurrency)
    raise ValueError(f"pool must be 'ray' or 'local', got {pool!r}")


def run_all(run_tasks: TaskRunner, function: Callable,
            calls: Sequence[tuple], title: Optional[str] = None,
            on_result: Optional[Callable] = None) -> list:
    """Every result of ``run_tasks(function, calls)``, in the order they
    finished; with ``on_result``, each is handed to it instead and none is
    kept (the driver's memory does not grow with the calls); with a
    ``title``, counted on standard error as they finish
    (:class:`~gadms.common.progress.Progress`)."""
    from gadms.common.progress import Progress
    progress = Progress(len(calls), title, file=sys.stderr) \
        if title else None
    results = []
    for result in run_tasks(function, calls):
        if on_result is None:
            results.append(result)
        else:
            on_result(result)
        if progress:
            progress.update()
    if progress:
        progress.close()
    return results


def bounded_tasks(remote_function, calls: Iterable[tuple],
                  concurrency: int) -> Iterator:
    """``remote_function.remote(*call)`` for each call, at most
    ``concurrency`` in flight; yields each task's result as it finishes
    (a task's error is raised here)."""
    import ray
    calls, in_flight = iter(calls), []
    while True:
        for call in calls:
            in_flight.append(remote_function.remote(*call))
            if len(in_flight) >= max(1, concurrency):
                break
        if not in_flight:
            return
        done, in_flight = ray.wait(in_flight, num_returns=1)
        yield ray.get(done[0])


def local_process_tasks(function: Callable, calls: Iterable[tuple],
                        processes: int) -> Iterator:
    """``function(*call)`` for each call in a pool of ``processes`` local
    processes: what :func:`bounded_tasks` does on Ray, without Ray; yields
    each result as it finishes (an error in a call is raised here).

    A worker process that dies (killed, out of memory) breaks the pool:
    the calls without a result are run again in a new pool, at most
    ``WORKER_RETRIES`` times in all, so that a call which kills every
    worker fails the run instead of looping for ever. The workers are
    spawned by the caller and end with it (:func:`_end_with_parent`): a
    killed driver leaves none finishing a call that its next run does
    again.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    waiting, restarts = list(calls), 0
    while waiting:
        with ProcessPoolExecutor(
                max(1, processes),
                mp_context=multiprocessing.get_context('spawn'),
                initializer=_end_with_parent) as pool:
            futures = {pool.submit(function, *call): call
                       for call in waiting}
            waiting = []
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    waiting.append(futures[future])
                    continue
                yield result
        if waiting:
            restarts += 1
            if restarts > WORKER_RETRIES:
                raise RuntimeError(
                    f'worker processes died {restarts} times; '
                    f'{len(waiting)} call(s) of {function!r} never '
                    'finished')


def bound_driver_memory(arenas: int = DRIVER_MALLOC_ARENAS) -> bool:
    """Keep a corpus driver's memory from growing with the number of
    tasks and pipelines it runs: its threads share at most ``arenas``
    malloc arenas (glibc's ``M_ARENA_MAX``), and Ray's task-event buffer
    is :data:`DRIVER_RAY_ENV`'s size unless the environment sets it. Call
    it before ``ray.init``: a thread keeps the arena it got first, and Ray
    reads its settings when it starts. Returns whether the C library took
    the arena limit (False off glibc)."""
    import ctypes
    for name, value in DRIVER_RAY_ENV.items():
        os.environ.setdefault(name, value)
    try:
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False


def _end_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent ends (Linux's
    ``PR_SET_PDEATHSIG``; elsewhere nothing). Not with multiprocessing's
    fork server: each of its children keeps it alive, so it never ends
    with the caller."""
    import ctypes
    import signal
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: not Linux
        pass


def run_shard_groups(shards: Sequence[str],
                     build: Callable[[List[str]], object],
                     target: Callable[[str], str],
                     empty_schema: pa.Schema,
                     work_folder: str,
                     group_size: int) -> None:
    """For each group of ``group_size`` shards, write ``build(group)``
    (rows with a ``shard`` column) partitioned by shard into
    ``work_folder``, then rename each shard's folder to ``target(shard)``.

    A shard without rows gets a folder with an empty file of
    ``empty_schema``, so that it counts as finished. The whole group is
    the unit a killed driver loses.
    """
    for start in range(0, len(shards), max(1, group_size)):
        group = list(shards[start:start + group_size])
        shutil.rmtree(work_folder, ignore_errors=True)
        write_ray_parquet(build(group), work_folder, partition_cols=['shard'])
        _check_partitions(work_folder, group)
        for shard in group:
            written = osp.join(work_folder, f'shard={shard}')
            if not osp.isdir(written):
                os.makedirs(written)
                write_parquet(empty_schema.empty_table(),
                              osp.join(written, 'empty.parquet'))
            os.makedirs(osp.dirname(target(shard)), exist_ok=True)
            os.replace(written, target(shard))
        shutil.rmtree(work_folder, ignore_errors=True)


def commit_shards_as_they_finish(shards: Sequence[str],
                                 build: Callable[[List[str]], object],
                                 target: Callable[[str], str],
                                 expected: Dict[str, int],
                                 schema: pa.Schema,
                                 group_size: int) -> None:
    """For each group of ``group_size`` shards, stream ``build(group)``'s
    rows (with a ``shard`` column) to the driver and commit each shard as
    soon as its ``expected[shard]`` rows have all arrived: its rows, in
    ``schema`` without the ``shard`` column, as one parquet file in the
    folder ``target(shard)``, renamed into place. A killed driver loses
    only the shards still in flight; the driver holds their rows only.

    Raises:
        RuntimeError: a row of a shard outside the group, more rows than
            expected, or a shard short of rows when the group ends.
    """
    columns = [name for name in schema.names if name != 'shard']
    for start in range(0, len(shards), max(1, group_size)):
        group = list(shards[start:start + group_size])
        waiting = {shard: expected[shard] for shard in group}
        arrived: Dict[str, list] = {shard: [] for shard in group}
        for shard in [shard for shard in group if not waiting[shard]]:
            _commit_shard(target(shard), [], schema, columns)
        for batch in build(group).iter_batches(batch_format='pyarrow',
                                               batch_size=None):
            for shard in pc.unique(batch['shard']).to_pylist():
                rows = batch.filter(pc.equal(batch['shard'], shard))
                if waiting.get(shard, 0) < len(rows):
                    wanted = expected[shard] if shard in waiting else 0
                    got = wanted - waiting.get(shard, 0) + len(rows)
                    raise RuntimeError(
                        f'shard {shard!r}: {got} rows arrived, {wanted} '
                        f'expected (group {sorted(group)})')
                arrived[shard].append(rows)
                waiting[shard] -= len(rows)
                if not waiting[shard]:
                    _commit_shard(target(shard), arrived.pop(shard),
                                  schema, columns)
        short = {shard: count for shard, count in waiting.items() if count}
        if short:
            raise RuntimeError(f'the pipeline ended with rows missing: '
                               f'{short} (shard: rows still expected)')


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: its columns cast, a missing (optional)
    column null."""
    return pa.table([
        table[field.name].cast(field.type) if field.name in
        table.column_names else pa.nulls(len(table), field.type)
        for field in schema], schema=schema)


def _commit_shard(folder: str, tables: list, schema: pa.Schema,
                  columns: List[str]) -> None:
    """Write a shard's rows as ``folder/part-0.parquet``, the folder
    renamed into place."""
    table = pa.concat_tables([_conform(t, schema) for t in tables]) \
        if tables else schema.empty_table()
    os.makedirs(osp.dirname(folder), exist_ok=True)
    with atomic_folder(folder) as part:
        write_parquet(table.select(columns),
                      osp.join(part, 'part-0.parquet'))


def _check_partitions(work_folder: str, group: Sequence[str]) -> None:
    """Fail unless every folder Ray wrote is ``shard=<name>`` of a shard of
    ``group`` (a name that the partitioned write escapes, or a row of
    another shard, would otherwise be deleted with the work folder)."""
    expected = {f'shard={shard}' for shard in group}
    unexpected = sorted(set(os.listdir(work_folder)) - expected) \
        if osp.isdir(work_folder) else []
    if unexpected:
        raise RuntimeError(
            f'{work_folder}: partitions {unexpected} are not shards of this '
            f'group {sorted(group)} (shard names must be plain: letters, '
            'digits, "-", "_", ".")')
