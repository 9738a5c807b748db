"""gadms's corpus download against img2dataset, whole commands side by side.

Both downloaders fetch the same parquet URL table (``key``, ``url``,
``text``: clean ``/scene/<n>.jpg`` URLs, 240 x 320 JPEGs of about 4 KiB)
from the same loopback HTTP server, on the same CPUs, one after the
other, and write parquet:

- gadms: ``tools/dataset_converters/build_webperson_corpus.py download``
  with ``--cpus`` processes (its default on one machine), and with the
  same tasks on a new local Ray (``--address local``, as on a cluster);
- img2dataset 1.47 (``--processes_count CPUS --thread_count 16
  --resize_mode no --output_format parquet``, its multiprocessing
  distributor) in its own virtual environment, created on first use
  (``--venv``): its OpenCV and pins stay out of gadms's environment.

The server runs in its own process and serves a cache of pre-encoded
scenes, so that it spends its CPU on HTTP, not on JPEG encoding. Each
whole command is timed from its start to its exit (Python start, imports,
Ray start, bucketing, deduplication, downloads, writes); both must fetch
every URL::

    .venv/bin/python benchmarks/corpus_download.py --sizes 2000 20000 100000

Each tool runs at several requests in flight per process (gadms: per
task, ``--threads``, default 64; img2dataset: ``--thread_count``, 16 in
issue #38's command). Prints one row per size and run (wall time,
images/s) and, for gadms, the ratio of img2dataset's best time at that
size to its own (above 1: gadms is faster).
"""
import argparse
import glob
import json
import multiprocessing
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IMG2DATASET = 'img2dataset==1.47.0'
DEFAULT_VENV = osp.join(osp.expanduser('~'), '.cache', 'gadms',
                        'img2dataset-1.47')
# distinct scenes the server cycles through (pre-encoded once)
SCENES = 500


def _serve(connection) -> None:
    """The loopback web of scenes, until told to stop."""
    from gadms.testing.loopback import SceneWeb, scene
    cache = [scene(i) for i in range(SCENES)]
    web = SceneWeb(lambda index: cache[index % SCENES])
    connection.send(web.base)
    connection.recv()
    web.close()


def ensure_img2dataset(venv: str) -> str:
    """img2dataset's executable in ``venv``, creating and filling the
    virtual environment when it is missing."""
    executable = osp.join(venv, 'bin', 'img2dataset')
    if not osp.exists(executable):
        print(f'creating {venv} with {IMG2DATASET} (once)', flush=True)
        subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
        subprocess.run([osp.join(venv, 'bin', 'pip'), 'install', '-q',
                        IMG2DATASET], check=True)
    return executable


def write_url_table(path: str, count: int, web: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table(dict(
        key=[f'{i:09d}' for i in range(count)],
        url=[f'{web}/scene/{i}.jpg' for i in range(count)],
        text=['a web photo'] * count)), path)


def _timed(command: list, env: dict) -> float:
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if run.returncode:
        sys.exit(f'{command[:3]} failed ({run.returncode}):\n'
                 + run.stderr[-3000:])
    return seconds


def run_gadms(table: str, out: str, cpus: int, threads: int,
              pool: str) -> dict:
    """The whole ``download`` command (``pool`` ``'local'``: its default,
    processes on this machine; ``'ray'``: a new local Ray, as on a
    cluster, through ``--address local``); its report's ok count and the
    stage's own time."""
    seconds = _timed([
        sys.executable, osp.join(ROOT, 'tools', 'dataset_converters',
                                 'build_webperson_corpus.py'),
        'download', table, out, '--concurrency', str(cpus), '--threads',
        str(threads)] + (['--address', 'local'] if pool == 'ray' else []),
        dict(os.environ, PYTHONPATH=ROOT))
    with open(osp.join(out, 'download_report.json')) as f:
        report = json.load(f)
    return dict(seconds=seconds, ok=report['status'].get('ok', 0),
                stage_seconds=report['seconds_this_run'])


def run_img2dataset(executable: str, table: str, out: str, cpus: int,
                    threads: int) -> dict:
    """The whole ``img2dataset`` command and its successes."""
    seconds = _timed([
        executable, '--url_list', table, '--input_format', 'parquet',
        '--url_col', 'url', '--caption_col', 'text', '--output_format',
        'parquet', '--output_folder', out, '--processes_count', str(cpus),
        '--thread_count', str(threads), '--resize_mode', 'no',
        '--enable_wandb', 'False'],
        dict(os.environ, NO_ALBUMENTATIONS_UPDATE='1'))
    ok = 0
    for stats in glob.glob(osp.join(out, '*_stats.json')):
        with open(stats) as f:
            ok += json.load(f)['successes']
    return dict(seconds=seconds, ok=ok)


def table(results: list) -> str:
    """One row per size and run (each tool at each in-flight count), with
    the ratio of img2dataset's best time to gadms's time at its default
    (above 1: gadms is faster)."""
    lines = ['| URLs | command | requests in flight per process | wall s '
             '| img/s | img2dataset best s / this s |',
             '| ---: | --- | ---: | ---: | ---: | ---: |']
    names = dict(local='gadms', ray='gadms on Ray')
    for r in results:
        best = min(run['seconds'] for run in r['runs']
                   if run['tool'] == 'img2dataset')
        for run in r['runs']:
            stage = f' (stage {run["stage_seconds"]:.1f})' \
                if 'stage_seconds' in run else ''
            ratio = f'{best / run["seconds"]:.2f}x' \
                if run['tool'] == 'gadms' else ''
            lines.append(
                f'| {r["urls"]:,} | {names.get(run.get("pool"), run["tool"])}'
                f' | {run["threads"]} | '
                f'{run["seconds"]:.1f}{stage} | '
                f'{r["urls"] / run["seconds"]:.0f} | {ratio} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[2000, 20000, 100000])
    parser.add_argument('--cpus', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--gadms-runs', nargs='+',
                        default=['local:64', 'local:16', 'ray:64'],
                        help='POOL:THREADS of each gadms run (local: its '
                        'default processes; ray: a new local Ray; 64: its '
                        'default --threads)')
    parser.add_argument('--img2dataset-threads', type=int, nargs='+',
                        default=[16, 64], help='--thread_count of '
                        'img2dataset runs')
    parser.add_argument('--venv', default=DEFAULT_VENV,
                        help="img2dataset's virtual environment")
    parser.add_argument('--out', help='JSON results file')
    args = parser.parse_args()
    executable = ensure_img2dataset(args.venv) \
        if args.img2dataset_threads else None
    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(there, ),
                                     daemon=True)
    server.start()
    web = here.recv()
    results = []
    try:
        for count in args.sizes:
            for repeat in range(args.repeats):
                runs = [('gadms', ) + tuple(run.split(':'))
                        for run in args.gadms_runs] + [
                    ('img2dataset', None, t)
                    for t in args.img2dataset_threads]
                results.append(dict(urls=count, repeat=repeat, runs=[
                    _run_once(tool, pool, int(threads), count, web,
                              args.cpus, executable)
                    for tool, pool, threads in runs]))
                print(json.dumps(results[-1]), flush=True)
    finally:
        here.send('stop')
        server.join()
    if args.gadms_runs and args.img2dataset_threads:
        print(table(results))
    if args.out:
        from gadms.common.atomic import write_json
        write_json(args.out, results, indent=1)


def _run_once(tool: str, pool: str, threads: int, count: int, web: str,
              cpus: int, executable: str) -> dict:
    """One whole command on a fresh table of ``count`` URLs; it must fetch
    every one."""
    folder = tempfile.mkdtemp(prefix='corpus_download_')
    try:
        url_table = osp.join(folder, 'urls.parquet')
        write_url_table(url_table, count, web)
        out = osp.join(folder, tool)
        run = run_gadms(url_table, out, cpus, threads, pool) \
            if tool == 'gadms' else run_img2dataset(
                executable, url_table, out, cpus, threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if run['ok'] != count:
        sys.exit(f'{tool} fetched {run["ok"]} of {count} URLs: {run}')
    return dict(run, tool=tool, pool=pool, threads=threads)


if __name__ == '__main__':
    main()
