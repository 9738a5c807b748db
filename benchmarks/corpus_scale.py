"""The WebPerson corpus pipeline at growing size: memory and throughput.

A synthetic URL table (``/scene/<n>.jpg``: a grey scene with one person
block, 240 x 320 JPEG) is served from a loopback HTTP server and goes
through every stage on a local Ray: download, filter (the CPU test
detector, ``ContrastBoxDetector``), caption (a fake OpenAI-compatible
server on loopback) and export. Each configuration (images, CPUs) runs in
a fresh process with a fresh Ray; the two servers run in a third process,
so that neither counts towards the driver:

    .venv/bin/python benchmarks/corpus_scale.py --sizes 2000 20000 --cpus 1 2

Reported per configuration: each stage's images per second (download:
URLs, caption: crops, two captions each); the driver's peak private
resident memory (``RssAnon``: the object store's shared pages left out,
see ``WorkerPeaks``; also its whole peak RSS, and its peak so far at
the end of each stage), the largest of a Ray worker
process, and the largest sum over the workers at one moment (sampled four
times a second), with the number of worker processes the run started.
The shards keep their size as the corpus grows (``--images-per-shard``);
the filter and caption stages run the command line's 64 shards per Ray
Data pipeline (``--shards-per-run``) and the export its 16 buckets, so
memory should not grow with the corpus.
"""
import argparse
import json
import multiprocessing
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

STAGES = ('download', 'filter', 'caption', 'export')
TEMPLATES = ['A [person] in a [colour] [upper] and [colour] [lower].',
             'The [person] wears [colour] [shoes] and carries a [bag].',
             'A [person] with [hair] walks in a [colour] [upper].',
             'The [person] has a [colour] [bag] and [colour] [shoes].']


def _serve(connection) -> None:
    """The synthetic web and the caption server, until told to stop."""
    from gadms.testing.loopback import FakeCaptionServer, SceneWeb
    web, captions = SceneWeb(), FakeCaptionServer()
    connection.send((web.base, captions.url))
    connection.recv()
    web.close()
    captions.close()


def _title(pid: int) -> str:
    """A process's title (Ray names a busy worker ``ray::<task>``)."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().split(b'\0')[0].decode(errors='replace')[:80]
    except OSError:
        return '?'


class WorkerPeaks:
    """Samples the driver and the Ray worker processes four times a second:
    the largest private resident memory (``RssAnon``: without the pages of
    Ray's shared object store, which every process that reads a block
    maps) of each, and the largest sum over the workers at one moment
    (workers come and go: actors end with their pipeline)."""

    def __init__(self) -> None:
        from gadms.testing.peak_memory import ray_worker_pids, resident_mib
        self.peaks, self.largest_sum, self.driver = {}, 0.0, 0.0
        self.driver_by_stage = {}
        self.stage, self.stage_sums, self.titles = None, {}, {}
        self.ran = {}  # pid -> the titles seen: what the worker ran
        self.by_title = {}  # title -> the largest RssAnon seen under it
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.25):
                private = resident_mib(ray_worker_pids(), 'RssAnon')
                for pid, mib in private.items():
                    title = _title(pid)
                    self.ran.setdefault(pid, set()).add(title)
                    self.by_title[title] = max(mib,
                                               self.by_title.get(title, 0))
                    if mib > self.peaks.get(pid, 0):
                        self.peaks[pid] = mib
                        self.titles[pid] = (self.stage, _title(pid))
                total = sum(private.values())
                self.largest_sum = max(self.largest_sum, total)
                if total > self.stage_sums.get(self.stage, (0, 0))[0]:
                    self.stage_sums[self.stage] = (round(total),
                                                   len(private))
                driver = resident_mib([os.getpid()], 'RssAnon')[os.getpid()]
                self.driver = max(self.driver, driver)
                self.driver_by_stage[self.stage] = max(
                    driver, self.driver_by_stage.get(self.stage, 0))
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> 'WorkerPeaks':
        self._stop.set()
        self._thread.join()
        return self


def run_one(images: int, cpus: int, images_per_shard: int,
            shards_per_run: int, web: str, caption_url: str,
            folder: str) -> dict:
    """Every stage on ``images`` URLs with a local Ray of ``cpus`` CPUs."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray
    from ray.data import DataContext

    from gadms.corpus import (CORPUS_RUNTIME_ENV, ContrastBoxDetector,
                              DownloadOptions, FilterOptions,
                              PersonFilterRules, ServerCaptionBackend,
                              run_caption_stage, run_download_stage,
                              run_export_stage, run_filter_stage)
    from gadms.corpus.caption_stage import openai_servers
    from gadms.corpus.sharded import bound_driver_memory
    bound_driver_memory()
    ray.init(address='local', num_cpus=cpus, include_dashboard=False,
             log_to_driver=False, configure_logging=False,
             runtime_env=CORPUS_RUNTIME_ENV)
    DataContext.get_current().enable_progress_bars = False
    table = osp.join(folder, 'urls.parquet')
    # written 10,000 rows at a time: the table is the benchmark's input,
    # and the driver's peak memory is to measure the stages, not it
    schema = pa.schema([(name, pa.string()) for name in ('key', 'url',
                                                         'text')])
    with pq.ParquetWriter(table, schema) as writer:
        for start in range(0, images, 10000):
            rows = range(start, min(images, start + 10000))
            writer.write_table(pa.table(dict(
                key=[f'{i:08d}' for i in rows],
                url=[f'{web}/scene/{i}.jpg' for i in rows],
                text=['a web photo'] * len(rows)), schema=schema))
    shards = max(1, images // images_per_shard)
    peaks = WorkerPeaks()
    seconds = {}
    peaks.stage = 'download'
    start = time.monotonic()
    run_download_stage(table, osp.join(folder, 'web'), DownloadOptions(
        timeout=30), concurrency=cpus, num_partitions=shards)
    seconds['download'] = time.monotonic() - start
    peaks.stage = 'filter'
    start = time.monotonic()
    report = run_filter_stage(
        osp.join(folder, 'web'), ContrastBoxDetector(),
        osp.join(folder, 'corpus'), FilterOptions(
            rules=PersonFilterRules(require_keypoints=False), actors=cpus,
            batch_size=32, shards_per_run=shards_per_run))
    seconds['filter'] = time.monotonic() - start
    crops = report['kept']
    peaks.stage = 'caption'
    start = time.monotonic()
    report = run_caption_stage(osp.join(folder, 'corpus'),
                               ServerCaptionBackend(partial(
                                   openai_servers, [caption_url],
                                   model='fake-mllm'), actors=cpus,
                                   threads=8, batch_size=32),
                               TEMPLATES, shards_per_run=shards_per_run)
    seconds['caption'] = time.monotonic() - start
    assert report['still_missing'] == 0, report
    peaks.stage = 'export'
    start = time.monotonic()
    exported = run_export_stage(osp.join(folder, 'corpus'))
    seconds['export'] = time.monotonic() - start
    workers = peaks.stop()
    ray.shutdown()
    counted = dict(download=images, filter=images, caption=crops,
                   export=crops)
    return dict(
        images=images, cpus=cpus, crops=crops, kept=exported['kept'],
        per_s={s: round(counted[s] / seconds[s], 1) for s in STAGES},
        seconds={s: round(seconds[s], 1) for s in STAGES},
        driver_peak_mib=round(workers.driver),
        driver_peak_mib_by_stage={stage: round(mib) for stage, mib in
                                  workers.driver_by_stage.items()},
        driver_peak_rss_mib=round(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss / 1024),
        worker_peak_mib_max=round(max(workers.peaks.values())),
        worker_peak_mib_sum=round(workers.largest_sum),
        workers=len(workers.peaks),
        worker_sum_by_stage=workers.stage_sums,
        largest_worker=_largest(workers),
        peak_by_title={t: round(m) for t, m in sorted(
            workers.by_title.items(), key=lambda item: -item[1])})


def _largest(workers: 'WorkerPeaks') -> dict:
    """The largest worker: its peak, the stage and title at the peak, and
    the titles it was seen with (the tasks and actors it ran)."""
    pid = max(workers.peaks, key=workers.peaks.get)
    return dict(mib=round(workers.peaks[pid]), at=workers.titles[pid],
                ran=sorted(workers.ran[pid]))


def table(results: list) -> str:
    lines = ['| images | CPUs | ' + ' | '.join(
        f'{s} /s' for s in STAGES) + ' | driver peak MiB (private / RSS) '
        '| worker peak private MiB (one / all at once, processes) |',
        '| ---: | ---: | ' + ' | '.join('---:' for _ in STAGES) +
        ' | ---: | ---: |']
    for r in results:
        lines.append(
            f'| {r["images"]} | {r["cpus"]} | ' + ' | '.join(
                str(r['per_s'][s]) for s in STAGES) +
            f' | {r["driver_peak_mib"]} / {r["driver_peak_rss_mib"]} | '
            f'{r["worker_peak_mib_max"]} / '
            f'{r["worker_peak_mib_sum"]} ({r["workers"]}) |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[2000, 20000])
    parser.add_argument('--cpus', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--images-per-shard', type=int, default=125)
    parser.add_argument('--shards-per-run', type=int, default=64,
                        help='shards per Ray Data pipeline of the filter and '
                        'caption stages (default: the command line\'s 64)')
    parser.add_argument('--out', help='JSON results file')
    parser.add_argument('--one', nargs=4, metavar=('IMAGES', 'CPUS', 'WEB',
                                                   'CAPTIONS'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        folder = tempfile.mkdtemp(prefix='corpus_scale_')
        try:
            result = run_one(int(args.one[0]), int(args.one[1]),
                             args.images_per_shard, args.shards_per_run,
                             args.one[2], args.one[3], folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print('RESULT ' + json.dumps(result))
        return
    here, there = multiprocessing.Pipe()
    servers = multiprocessing.Process(target=_serve, args=(there, ),
                                      daemon=True)
    servers.start()
    web, captions = here.recv()
    results = []
    for images in args.sizes:
        for cpus in args.cpus:
            run = subprocess.run(
                [sys.executable, __file__, '--images-per-shard',
                 str(args.images_per_shard), '--shards-per-run',
                 str(args.shards_per_run), '--one', str(images),
                 str(cpus), web, captions],
                capture_output=True, text=True,
                env=dict(os.environ, RAY_DEDUP_LOGS='1'))
            line = [ln for ln in run.stdout.splitlines()
                    if ln.startswith('RESULT ')]
            if run.returncode or not line:
                sys.exit(f'{images} images on {cpus} CPUs failed:\n'
                         + run.stderr[-3000:])
            results.append(json.loads(line[0][len('RESULT '):]))
            print(json.dumps(results[-1]), flush=True)
    here.send('stop')
    servers.join()
    print(table(results))
    for cpus in args.cpus:
        mine = [r for r in results if r['cpus'] == cpus]
        if len(mine) > 1:
            small, large = mine[0], mine[-1]
            print(f'{cpus} CPU(s): {large["images"]} vs {small["images"]} '
                  'images: driver peak x'
                  f'{large["driver_peak_mib"] / small["driver_peak_mib"]:.2f}'
                  ', worker peak (max) x'
                  f'{large["worker_peak_mib_max"] / small["worker_peak_mib_max"]:.2f}'  # noqa: E501
                  ', (sum) x'
                  f'{large["worker_peak_mib_sum"] / small["worker_peak_mib_sum"]:.2f}')  # noqa: E501
    if args.out:
        with open(args.out + '.part', 'w') as f:
            json.dump(results, f, indent=1)
        os.replace(args.out + '.part', args.out)


if __name__ == '__main__':
    main()
