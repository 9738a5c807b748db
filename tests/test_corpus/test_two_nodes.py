"""The whole corpus pipeline (download, filter, caption, export) on a
two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, two
one-CPU nodes) writes what the single-node run writes."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from common import REPO_ROOT
from corpus_scenes import exported_rows

from gadms.testing.loopback import FakeCaptionServer, SceneWeb

# the stages as a user runs them, with the test detector and one server;
# ARGS: URL table, output folder, caption server URL
ALL_STAGES = '''
from functools import partial
from gadms.corpus import (ContrastBoxDetector, DownloadOptions,
                          FilterOptions, PersonFilterRules,
                          ServerCaptionBackend, run_caption_stage,
                          run_download_stage, run_export_stage,
                          run_filter_stage)
from gadms.corpus.caption_stage import openai_servers

table, out, url = ARGS
run_download_stage(table, out + '/web', DownloadOptions(
    timeout=5, retries=0, threads=2), concurrency=2, num_partitions=3)
run_filter_stage(out + '/web', ContrastBoxDetector(), out + '/corpus',
                 FilterOptions(rules=PersonFilterRules(
                     require_keypoints=False), actors=2, batch_size=2))
run_caption_stage(out + '/corpus', ServerCaptionBackend(partial(
    openai_servers, [url], model='fake-mllm'), actors=2, batch_size=2),
    [f'Template {k}: a [person] in [colour].' for k in range(8)])
run_export_stage(out + '/corpus', num_buckets=2)
'''
TWO_NODES = '''
import sys
ARGS = sys.argv[1:4]
import ray
from ray.cluster_utils import Cluster
from ray.data import DataContext
cluster = Cluster(initialize_head=True,
                  head_node_args=dict(num_cpus=1, include_dashboard=False))
cluster.add_node(num_cpus=1)
from gadms.corpus import CORPUS_RUNTIME_ENV
ray.init(address=cluster.address, log_to_driver=False,
         runtime_env=CORPUS_RUNTIME_ENV)
cluster.wait_for_nodes()
print('nodes', len([node for node in ray.nodes() if node['Alive']]))
DataContext.get_current().enable_progress_bars = False
'''
SHUT_DOWN = '''
ray.shutdown()
cluster.shutdown()
'''


def _crops(out: str) -> list:
    rows = pa.concat_tables(pq.read_table(f, partitioning=None) for f in
                            glob.glob(osp.join(out, 'crops', '*', '*')))
    return sorted(rows.to_pylist(), key=lambda r: (r['source'],
                                                   r['detection']))


def test_two_nodes_write_what_one_node_writes(ray_local, tmp_path):
    """One node: the session's local Ray (2 CPUs) in this process; two
    nodes: a cluster of two one-CPU nodes in a child process."""
    web, server = SceneWeb(), FakeCaptionServer()
    urls = [f'{web.base}/scene/{i}.jpg' for i in range(10)]
    urls += [f'{web.base}/missing/1', urls[3]]  # a 404, a repeated URL
    table = str(tmp_path / 'urls.parquet')
    pq.write_table(pa.table(dict(key=[f'k{i:02d}' for i in range(12)],
                                 url=urls, text=['t'] * 12)), table)
    exec(ALL_STAGES, dict(ARGS=(table, str(tmp_path / 'one'), server.url)))
    two = subprocess.run(
        [sys.executable, '-c', TWO_NODES + ALL_STAGES + SHUT_DOWN, table,
         str(tmp_path / 'two'), server.url], cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=300)
    web.close()
    server.close()
    assert two.returncode == 0, two.stderr[-3000:]
    assert 'nodes 2' in two.stdout
    report = json.load(open(tmp_path / 'one' / 'web' /
                            'download_report.json'))
    assert report['status'] == {'http 404': 1, 'ok': 10}
    corpus = [str(tmp_path / name / 'corpus') for name in ('one', 'two')]
    for folder in corpus:
        report = json.load(open(osp.join(folder, 'caption_report.json')))
        assert report['captions'] == 20 and report['still_missing'] == 0
    assert len(_crops(corpus[0])) == 10
    assert _crops(corpus[0]) == _crops(corpus[1])
    rows = exported_rows(corpus[0])
    assert len(rows) >= 5 and rows == exported_rows(corpus[1])
