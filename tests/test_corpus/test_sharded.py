"""run_shard_groups: each shard's rows renamed into place, group by group;
commit_shards_as_they_finish: each shard as soon as its rows are in."""
import os
import os.path as osp
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from common import tool_module

from gadms.corpus.sharded import (bounded_tasks, commit_shards_as_they_finish,
                                  local_process_tasks, run_shard_groups)
from gadms.testing.kills import KillsOnce, kill_own_process

SCHEMA = pa.schema([('value', pa.int64())])


def _rows(values_by_shard: dict):
    """A build function: the rows of each shard of the group."""

    def build(group):
        import ray.data
        rows = [dict(shard=shard, value=v) for shard in group
                for v in values_by_shard[shard]]
        return ray.data.from_items(rows)
    return build


def _values(folder: str) -> list:
    table = pa.concat_tables(
        pq.read_table(osp.join(folder, f), partitioning=None)
        for f in sorted(os.listdir(folder)))
    return sorted(table['value'].to_pylist())


def test_every_shard_lands_in_its_folder(ray_local, tmp_path):
    values = {'a': [1, 2], 'b': [], 'c': [3], 'd': [4, 5, 6]}
    out = tmp_path / 'out'
    run_shard_groups(list(values), _rows(values), lambda s: str(out / s),
                     SCHEMA, str(tmp_path / 'work'), group_size=3)
    assert sorted(os.listdir(out)) == ['a', 'b', 'c', 'd']
    for shard, expected in values.items():
        assert _values(str(out / shard)) == expected  # b: an empty file
    assert not osp.exists(tmp_path / 'work')


def test_a_shard_name_the_write_escapes_fails_loudly(ray_local, tmp_path):
    values = {'bucket=1': [1, 2]}
    with pytest.raises(RuntimeError, match='bucket=1'):
        run_shard_groups(list(values), _rows(values),
                         lambda s: str(tmp_path / 'out' / s), SCHEMA,
                         str(tmp_path / 'work'), group_size=4)
    assert not osp.exists(tmp_path / 'out')


def test_corpus_workers_use_the_system_allocator(ray_local):
    """CORPUS_RUNTIME_ENV reaches the workers: Arrow allocates with the C
    library there (mimalloc kept freed memory, docs/benchmarks.md)."""

    @ray_local.remote
    def backend() -> str:
        return pa.default_memory_pool().backend_name
    assert ray_local.get(backend.remote()) == 'system'


@pytest.mark.parametrize('address', [None, 'ray://head:10001'])
def test_cli_starts_ray_with_the_corpus_environment(monkeypatch, address):
    import argparse

    import ray

    from gadms.corpus import CORPUS_RUNTIME_ENV
    cli = tool_module('tools/dataset_converters/build_webperson_corpus.py')
    environ = {}
    monkeypatch.setattr(os, 'environ', environ)
    calls = []
    monkeypatch.setattr(ray, 'init', lambda **kwargs: calls.append(
        dict(kwargs, environ=dict(environ))))
    monkeypatch.setattr(cli, 'bound_driver_memory',
                        lambda: calls.append('arenas'))
    cli.init_ray(argparse.Namespace(address=address, num_cpus=1,
                                    num_gpus=0))
    # the driver's threads share two arenas from before Ray starts them
    assert calls[0] == 'arenas'
    calls.pop(0)
    if address:  # a cluster's workers get it from the job's runtime_env
        assert calls[0]['runtime_env'] == CORPUS_RUNTIME_ENV
    else:  # a local Ray's from the driver's environment, when it starts
        assert 'runtime_env' not in calls[0]
        assert calls[0]['environ'] == CORPUS_RUNTIME_ENV['env_vars']


# Eight threads malloc at once, then the script prints how many arenas
# (heaps) glibc's malloc_info reports
_ARENAS_SCRIPT = '''
import ctypes, sys, tempfile, threading
from gadms.corpus.sharded import bound_driver_memory
if sys.argv[1] == 'limit':
    assert bound_driver_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
together = threading.Barrier(8)

def allocate():
    together.wait()
    held = [libc.malloc(4096) for _ in range(100)]
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile(suffix='.xml') as report:
    out = ctypes.c_void_p(libc.fopen(report.name.encode(), b'w'))
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(open(report.name).read().count('<heap nr='))
'''


def test_the_driver_threads_share_two_malloc_arenas():
    """The driver's threads share two arenas (its growth per pipeline,
    docs/benchmarks.md); threads that start together otherwise get one
    each."""
    def arenas(mode: str) -> int:
        return int(subprocess.run(
            [sys.executable, '-c', _ARENAS_SCRIPT, mode], check=True,
            capture_output=True, text=True).stdout)
    assert arenas('limit') <= 2
    assert arenas('none') >= 4


# A driver runs 2,400 one-line tasks after 200 to warm up, then prints
# how much its private memory grew (MiB)
_TASKS_SCRIPT = '''
import os, sys
from gadms.corpus.sharded import bound_driver_memory, bounded_tasks
from gadms.testing.peak_memory import resident_mib
bound_driver_memory()
import ray
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
work = ray.remote(num_cpus=1)(lambda i: i)
me = [os.getpid()]
list(bounded_tasks(work, [(i, ) for i in range(200)], 2))
before = resident_mib(me, 'RssAnon')[me[0]]
list(bounded_tasks(work, [(i, ) for i in range(2400)], 2))
print(resident_mib(me, 'RssAnon')[me[0]] - before)
'''


def test_the_driver_does_not_grow_with_its_tasks():
    """Ray's task-event ring in the driver is kept small: with Ray's
    default (10,000 events) 2,400 tasks made the driver 7 MiB larger."""
    grown = float(subprocess.run(
        [sys.executable, '-c', _TASKS_SCRIPT], check=True,
        capture_output=True, text=True).stdout.splitlines()[-1])
    assert grown < 3


class _Stream:
    """A pipeline's output as the driver reads it: ``batches`` in order;
    ``seen`` records which shard folders existed before each batch."""

    def __init__(self, batches: list, out, seen: list) -> None:
        self.batches, self.out, self.seen = batches, out, seen

    def iter_batches(self, batch_format: str, batch_size=None):
        for batch in self.batches:
            self.seen.append(sorted(os.listdir(self.out))
                             if osp.isdir(self.out) else [])
            yield pa.Table.from_pylist(batch)


ROWS = [[dict(shard='a', value=1), dict(shard='b', value=2)],
        [dict(shard='a', value=3)],
        [dict(shard='b', value=4), dict(shard='b', value=5)]]


def test_a_shard_is_committed_when_its_last_row_arrives(tmp_path):
    out, seen = tmp_path / 'out', []
    commit_shards_as_they_finish(
        ['a', 'b', 'c'], lambda group: _Stream(ROWS, out, seen),
        lambda s: str(out / s), dict(a=2, b=3, c=0), SCHEMA, group_size=3)
    # c (no rows expected) at once, a after the second batch, b at the end
    assert seen == [['c'], ['c'], ['a', 'c']]
    assert sorted(os.listdir(out)) == ['a', 'b', 'c']
    assert _values(str(out / 'a')) == [1, 3]
    assert _values(str(out / 'b')) == [2, 4, 5]
    assert _values(str(out / 'c')) == []
    # the files hold the schema's columns, not the shard
    assert pq.read_schema(str(out / 'a' / 'part-0.parquet')).names == [
        'value']


@pytest.mark.parametrize('expected,message', [
    (dict(a=2, b=2), r"shard 'b': 3 rows arrived, 2 expected"),
    (dict(a=2, b=4), r"rows missing: \{'b': 1\}"),
])
def test_rows_that_do_not_add_up_are_an_error(tmp_path, expected, message):
    out = tmp_path / 'out'
    with pytest.raises(RuntimeError, match=message):
        commit_shards_as_they_finish(
            ['a', 'b'], lambda group: _Stream(ROWS, out, []),
            lambda s: str(out / s), expected, SCHEMA, group_size=2)
    # a finished before the error; b never lands half
    assert sorted(os.listdir(out)) == ['a']


def test_shards_stream_through_ray(ray_local, tmp_path):
    values = {'a': [1, 2], 'b': [], 'c': [3], 'd': [4, 5, 6]}
    out = tmp_path / 'out'
    commit_shards_as_they_finish(
        list(values), _rows(values), lambda s: str(out / s),
        {s: len(v) for s, v in values.items()}, SCHEMA, group_size=3)
    for shard, expected in values.items():
        assert _values(str(out / shard)) == expected


def test_bounded_tasks_keep_at_most_concurrency_in_flight(monkeypatch):
    """Tasks are submitted as earlier ones finish, never more than
    ``concurrency`` at once, and every result comes back (Ray's wait and
    get stood in for: tasks finish in the order they were submitted)."""
    import ray
    submitted, in_flight_at_wait = [], []

    class Task:

        @staticmethod
        def remote(value):
            submitted.append(value)
            return value

    def wait(refs, num_returns):
        in_flight_at_wait.append(len(refs))
        return refs[:num_returns], refs[num_returns:]

    monkeypatch.setattr(ray, 'wait', wait)
    monkeypatch.setattr(ray, 'get', lambda ref: ref * 10)
    calls = iter([(value, ) for value in range(7)])
    results = []
    for result in bounded_tasks(Task, calls, 3):
        results.append(result)
        # one submission per finished task: the calls are read lazily
        assert len(submitted) == min(7, len(results) + 2)
    assert results == [value * 10 for value in range(7)]
    assert max(in_flight_at_wait) == 3 and in_flight_at_wait[-1] == 1


def test_local_tasks_run_again_when_their_worker_dies(tmp_path):
    """A local pool's worker killed in a call: the calls without a result
    run again in a new pool, and every result comes back once."""
    killer = KillsOnce(abs, str(tmp_path / 'killed'))
    results = list(local_process_tasks(killer, [(-v, ) for v in range(6)],
                                       processes=2))
    assert sorted(results) == list(range(6))
    assert osp.exists(tmp_path / 'killed')


def test_local_tasks_that_kill_every_worker_fail_the_run():
    with pytest.raises(RuntimeError, match='died 4 times'):
        for _ in local_process_tasks(kill_own_process, [(1, )], 1):
            pass
