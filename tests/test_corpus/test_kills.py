"""Kills: a driver killed mid-stage and the same command run again, and
worker processes killed mid-batch, each give exactly the corpus of an
uninterrupted run (no duplicates, nothing lost)."""
import glob
import json
import os
import os.path as osp
import sys
import time
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from common import REPO_ROOT, run_tool
from corpus_scenes import TEMPLATES, exported_rows
from ray import cloudpickle

from gadms.corpus import (FilterOptions, PrecomputedDetector,
                          ServerCaptionBackend, run_caption_stage,
                          run_export_stage, run_filter_stage)
from gadms.corpus.caption_stage import openai_servers
from gadms.testing.forked_tools import start_forked_tool
from gadms.testing.kills import KillsOnce
from gadms.testing.loopback import FakeCaptionServer, SceneWeb

pytestmark = pytest.mark.usefixtures('ray_local')
# the killers below run in Ray workers, which cannot import this module
cloudpickle.register_pickle_by_value(sys.modules[__name__])
SHARD_SIZE = 2


def killing_captioner(url: str, marker: str) -> KillsOnce:
    return KillsOnce(openai_servers([url], model='fake-mllm', backoff=0.01),
                     marker)


def _caption_rows(out: str) -> list:
    rows = [r for f in glob.glob(osp.join(out, 'captions', '*', '*', '*'))
            for r in pq.read_table(f, partitioning=None).to_pylist()]
    return sorted((r['id'], r['which']) for r in rows if not r['error'])


@pytest.fixture(scope='module')
def server():
    server = FakeCaptionServer(delay=0.05)
    yield server
    server.close()


@pytest.fixture(scope='module')
def uninterrupted(scenes, server, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('uninterrupted') / 'corpus')
    run_filter_stage(osp.join(scenes, 'images'), PrecomputedDetector(
        osp.join(scenes, 'detections.json')), out,
        FilterOptions(shard_size=SHARD_SIZE))
    run_caption_stage(out, ServerCaptionBackend(partial(
        openai_servers, [server.url], model='fake-mllm')), TEMPLATES)
    run_export_stage(out)
    assert len(exported_rows(out)) > 5
    return out


def _kill_when(command: list, ready) -> None:
    """Run ``command``, SIGKILL it once ``ready()`` holds (it must not have
    finished by then)."""
    run = start_forked_tool(command, os.devnull, cwd=REPO_ROOT)
    deadline = time.time() + 240
    while not ready():
        assert run.is_alive(), 'the stage finished before the kill'
        assert time.time() < deadline
        time.sleep(0.01)
    run.kill()  # SIGKILL
    run.join()


def _shard_folders(pattern: str) -> int:
    return len([p for p in glob.glob(pattern) if osp.isdir(p)])


def _settled_requests(server: FakeCaptionServer) -> int:
    """The server's request count once no request has come for 1 s (a
    killed driver's workers may still be finishing theirs)."""
    count = -1
    while count != sum(server.requests.values()):
        count = sum(server.requests.values())
        time.sleep(1.0)
    return count


def _kept_crops(out: str, shards: list) -> int:
    return sum(
        pq.read_table(f, columns=['status'], partitioning=None)[
            'status'].to_pylist().count('kept')
        for shard in shards
        for f in glob.glob(osp.join(out, 'crops', shard, '*.parquet')))


def test_a_killed_driver_then_the_same_command(scenes, server,
                                               uninterrupted, ray_local,
                                               tmp_path):
    """The CLI joins this session's Ray. The filter's driver is killed once
    two shards are done, the captioner's once its first shard's captions
    have landed; the same command then finishes each stage, and the
    caption re-run asks only for the shards that had not landed."""
    out = str(tmp_path / 'corpus')
    (tmp_path / 'templates.json').write_text(json.dumps(TEMPLATES))
    tool = ['tools/dataset_converters/build_webperson_corpus.py']
    where = ['--address', ray_local.get_runtime_context().gcs_address]
    filtering = tool + [
        'filter', osp.join(scenes, 'images'), out, '--detections',
        osp.join(scenes, 'detections.json'), '--shard-size',
        str(SHARD_SIZE), '--shards-per-run', '1'] + where
    captioning = tool + [
        'caption', out, '--templates', str(tmp_path / 'templates.json'),
        '--base-url', server.url, '--model', 'fake-mllm',
        '--shards-per-run', '64', '--batch-size', '2',
        '--concurrency', '1'] + where
    landed = osp.join(out, 'captions', '*', 'attempt-000')
    for command, ready in (
            (filtering,
             lambda: _shard_folders(osp.join(out, 'crops', '*')) >= 2),
            (captioning, lambda: _shard_folders(landed) >= 1)):
        _kill_when(command, ready)
        if command is captioning:
            shards = sorted(osp.basename(p) for p in glob.glob(
                osp.join(out, 'crops', '*')))
            done = {osp.basename(osp.dirname(p)) for p in glob.glob(landed)}
            unfinished = [s for s in shards if s not in done]
            assert done and unfinished  # killed in the middle
            asked_before = _settled_requests(server)
        result = run_tool(*command, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    # one request per caption of the shards that had not landed, no more
    assert sum(server.requests.values()) - asked_before == \
        2 * _kept_crops(out, unfinished)
    report = json.loads(result.stdout[result.stdout.index('{'):])
    assert report['still_missing'] == 0
    assert report['requests_this_run'] == 2 * _kept_crops(out, unfinished)
    assert _caption_rows(out) == _caption_rows(uninterrupted)
    run_export_stage(out)
    assert exported_rows(out) == exported_rows(uninterrupted)


def test_killed_workers_are_retried(scenes, server,
                                    uninterrupted, tmp_path):
    """A detector actor and a captioning actor each lose their process in
    the middle of a batch: Ray restarts them and retries the batch."""
    out = str(tmp_path / 'corpus')
    detector = KillsOnce(PrecomputedDetector(osp.join(
        scenes, 'detections.json')), str(tmp_path / 'detector-killed'))
    run_filter_stage(osp.join(scenes, 'images'), detector, out,
                     FilterOptions(shard_size=SHARD_SIZE))
    run_caption_stage(out, ServerCaptionBackend(partial(
        killing_captioner, server.url, str(tmp_path / 'captioner-killed'))),
        TEMPLATES)
    assert osp.exists(tmp_path / 'detector-killed')
    assert osp.exists(tmp_path / 'captioner-killed')
    run_export_stage(out)
    assert _caption_rows(out) == _caption_rows(uninterrupted)
    assert exported_rows(out) == exported_rows(uninterrupted)


def _downloaded(out: str) -> list:
    return sorted((r['key'], r['status'], r['image']) for f in glob.glob(
        osp.join(out, 'images', '*', '*.parquet'))
        for r in pq.read_table(f, partitioning=None).to_pylist())


def _settled_paths(web: SceneWeb) -> dict:
    """The web's requests per path once none has come for 1 s."""
    count = -1
    while count != sum(web.requests.values()):
        count = sum(web.requests.values())
        time.sleep(1.0)
    return dict(web.requests)


@pytest.mark.parametrize('pool', ['ray', 'local'])
def test_a_killed_download_driver_then_the_same_command(ray_local,
                                                        tmp_path, pool):
    """The download's driver (on this session's Ray, or with its local
    pool of processes) is killed once its first bucket has landed; the
    same command then asks the web again only for the URLs of the buckets
    that had not landed, each once, and writes what an uninterrupted run
    writes."""
    web = SceneWeb(delay=0.02)
    try:
        table = str(tmp_path / 'urls.parquet')
        pq.write_table(pa.table(dict(
            key=[f'{i:03d}' for i in range(60)],
            url=[f'{web.base}/scene/{i}.jpg' for i in range(60)],
            text=['x'] * 60)), table)
        where = ['--address', ray_local.get_runtime_context().gcs_address
                 ] if pool == 'ray' else []

        def download(out):
            return ['tools/dataset_converters/build_webperson_corpus.py',
                    'download', table, out, '--partitions', '6',
                    '--concurrency', '1', '--threads', '2'] + where
        uninterrupted = str(tmp_path / 'uninterrupted')
        assert run_tool(*download(uninterrupted), timeout=300
                        ).returncode == 0
        web.requests.clear()
        out = str(tmp_path / 'out')
        _kill_when(download(out), lambda: _shard_folders(
            osp.join(out, 'images', 'bucket=*')) >= 1)
        landed = {osp.basename(p) for p in glob.glob(
            osp.join(out, 'images', 'bucket=*'))}
        unfinished = [f for f in glob.glob(osp.join(out, 'urls', '*'))
                      if osp.basename(f)[:-len('.parquet')] not in landed]
        assert landed and unfinished  # killed in the middle
        before = _settled_paths(web)
        result = run_tool(*download(out), timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        asked = {path: count - before.get(path, 0)
                 for path, count in web.requests.items()
                 if count > before.get(path, 0)}
        expected = {url[len(web.base):]: 1 for f in unfinished
                    for url in pq.read_table(f)['url'].to_pylist()}
        assert asked == expected
        assert _downloaded(out) == _downloaded(uninterrupted)
        assert len(_downloaded(out)) == 60
        assert not osp.exists(osp.join(out, 'buckets'))
    finally:
        web.close()
