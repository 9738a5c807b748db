"""The browser app under load: concurrent text queries against a large
index, on loopback.

    .venv/bin/python benchmarks/serve_load.py --images 100000 \
        --clients 20 --queries 50

Starts ``tools/serve.py`` (a separate process, as a user runs it) on a
saved index of ``--images`` random L2-normalised features (what matters
here is the search, not the pictures) for the config's model with random
weights, once per ``--max-batch`` value (1: each query alone; the
default 32: the queries waiting at once are encoded and searched as one
batch). ``--clients`` threads each send ``--queries`` searches (a
SynthPerson-style sentence each, top 10), one after the other; the run
is bounded by ``--deadline`` seconds. Reported per configuration:
latency p50 / p95 / max, errors (any answer but 200), and answered
queries per second.
"""
import argparse
import json
import os
import os.path as osp
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

COLOURS = ('red', 'blue', 'black', 'white', 'grey', 'green', 'yellow')
CLOTHES = ('jacket', 'coat', 'shirt', 'dress', 'hoodie', 't-shirt')
LOWER = ('jeans', 'trousers', 'skirt', 'shorts')
BAGS = ('backpack', 'handbag', 'shoulder bag', 'no bag')


def sentence(rng: random.Random) -> str:
    return (f'a {rng.choice(("man", "woman", "person"))} in a '
            f'{rng.choice(COLOURS)} {rng.choice(CLOTHES)} and '
            f'{rng.choice(COLOURS)} {rng.choice(LOWER)} with a '
            f'{rng.choice(BAGS)}')


def build_index(config: str, images: int, folder: str) -> tuple:
    """A checkpoint of the config's model (random weights) and a saved
    index of ``images`` random features with its fingerprint."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from gadms.apis import GalleryIndex, TextPersonInferencer
    from gadms.registry import MODELS
    torch.manual_seed(0)
    init_default_scope('gadms')
    model = MODELS.build(Config.fromfile(config).model)  # random weights
    checkpoint = osp.join(folder, 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    inferencer = TextPersonInferencer(config, checkpoint)
    dim = inferencer.model.backbone.embed_dim
    features = torch.nn.functional.normalize(torch.randn(images, dim), dim=-1)
    index = GalleryIndex(features.half(), [f'{i:07d}.png' for i in
                                           range(images)], None,
                         inferencer.fingerprint, folder)
    path = osp.join(folder, 'gallery.pth')
    index.save(path)
    return checkpoint, path, dim


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def start_app(config: str, checkpoint: str, index: str, max_batch: int
              ) -> tuple:
    """``tools/serve.py`` on a free port; returns (process, base URL) once
    it answers."""
    from gadms.testing.app_server import fetch
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, 'tools/serve.py', config, checkpoint, '--gallery',
         index, '--port', str(port), '--max-batch', str(max_batch)],
        cwd=osp.dirname(osp.dirname(osp.abspath(__file__))),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit('tools/serve.py ended: '
                             + process.stderr.read().decode()[-2000:])
        try:
            if fetch(base, '/api/info', timeout=5)[0] == 200:
                return process, base
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit('tools/serve.py did not start in 300 s')


def load(base: str, clients: int, queries: int, deadline: float) -> dict:
    """``clients`` threads, each sending ``queries`` searches in turn."""
    from gadms.testing.app_server import fetch
    latencies, errors = [], []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline

    def client(number: int) -> None:
        rng = random.Random(number)
        for _ in range(queries):
            if time.monotonic() > stop_at:
                return
            start = time.monotonic()
            try:
                status, _ = fetch(base, '/api/search', q=sentence(rng), k=10,
                                  timeout=deadline)
            except OSError as err:
                status = repr(err)
            with lock:
                latencies.append(time.monotonic() - start)
                if status != 200:
                    errors.append(status)

    threads = [threading.Thread(target=client, args=(n, ))
               for n in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    ordered = sorted(latencies)
    return dict(answered=len(latencies), errors=len(errors),
                error_kinds=sorted({str(e) for e in errors}),
                p50_ms=round(1000 * statistics.median(ordered), 1),
                p95_ms=round(1000 * ordered[int(0.95 * (len(ordered) - 1))],
                             1),
                max_ms=round(1000 * ordered[-1], 1),
                queries_per_s=round(len(latencies) / seconds, 1),
                seconds=round(seconds, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/baselines/'
                        'clip-sdm_vit-b16_1xb64_cuhk-pedes.py')
    parser.add_argument('--images', type=int, default=100000)
    parser.add_argument('--clients', type=int, default=20)
    parser.add_argument('--queries', type=int, default=50)
    parser.add_argument('--max-batch', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--deadline', type=float, default=900,
                        help='seconds for all clients of one configuration')
    parser.add_argument('--out', help='JSON results file')
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix='serve_load_') as folder:
        checkpoint, index, dim = build_index(args.config, args.images, folder)
        for max_batch in args.max_batch:
            process, base = start_app(args.config, checkpoint, index,
                                      max_batch)
            try:
                result = load(base, args.clients, args.queries,
                              args.deadline)
            finally:
                process.terminate()
                process.wait(30)
            result.update(images=args.images, dim=dim, clients=args.clients,
                          queries=args.clients * args.queries,
                          max_batch=max_batch)
            results.append(result)
            print(json.dumps(result), flush=True)
    print('| max batch | clients x queries | answered | p50 ms | p95 ms | '
          'max ms | errors | queries/s |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for r in results:
        each = r['queries'] // r['clients']
        print(f"| {r['max_batch']} | {r['clients']} x {each} | "
              f"{r['answered']} | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['max_ms']} | {r['errors']} | {r['queries_per_s']} |")
    if args.out:
        from gadms.common.atomic import write_json
        write_json(args.out, results, indent=1)
    if any(r['errors'] or r['answered'] < r['queries'] for r in results):
        sys.exit('some queries failed or were not sent in time')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
