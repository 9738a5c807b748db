"""Top-k text-to-image search speed and memory over large galleries.

Random L2-normalised 512-d features; each configuration runs in a fresh
process, which reports the gallery's size, the peak resident memory the
search adds on top of the loaded gallery (``VmHWM`` minus the resident
size before searching), and queries per second:

    .venv/bin/python benchmarks/gallery_search.py --sizes 10000 100000 1000000

Backends: gadms' ``chunked_topk`` (fp16 or fp32 storage) and, when
installed, faiss' exact ``IndexFlatIP`` (fp32 only).

``--side-by-side`` instead times the three on one gallery in one process,
round-robin (faiss, gadms fp32, gadms fp16, then again), and reports the
median of the rounds and gadms / faiss, so machine load affects all alike:

    .venv/bin/python benchmarks/gallery_search.py --side-by-side \
        --sizes 1000000
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


DIM = 512


def _status(field: str) -> float:
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field))
    return int(line.split()[1]) / 1024


def _reset_peak() -> None:
    """Sets this process' ``VmHWM`` (peak resident size) to the current
    resident size (Linux ``clear_refs``)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def measure(size: int, backend: str, queries: int, topk: int,
            chunk: int) -> dict:
    dtype = torch.float16 if backend == 'gadms-fp16' else torch.float32
    gallery = _gallery(size, dtype)
    query = torch.nn.functional.normalize(torch.randn(queries, DIM), dim=1)
    if backend == 'faiss':
        import faiss
        index = faiss.IndexFlatIP(DIM)
        index.add(gallery.numpy())
        search = lambda: index.search(query.numpy(), topk)  # noqa: E731
    else:
        from gadms.apis import chunked_topk
        search = lambda: chunked_topk(query, gallery, topk, chunk)  # noqa
    _reset_peak()  # building the gallery peaked above what search needs
    before = _status('VmRSS')
    search()  # warm-up
    start = time.perf_counter()
    repeats = 3
    for _ in range(repeats):
        search()
    seconds = (time.perf_counter() - start) / repeats
    return dict(
        size=size, backend=backend,
        gallery_mib=round(gallery.numel() * gallery.element_size() / 2**20),
        search_peak_mib=round(max(0.0, _status('VmHWM') - before)),
        queries_per_s=round(queries / seconds))


def _gallery(size: int, dtype: torch.dtype) -> torch.Tensor:
    torch.manual_seed(0)
    gallery = torch.empty(size, DIM, dtype=dtype)
    for start in range(0, size, 100_000):  # no fp32 copy of a fp16 gallery
        block = torch.randn(min(100_000, size - start), DIM)
        gallery[start:start + len(block)] = torch.nn.functional.normalize(
            block, dim=1)
    return gallery


def side_by_side(size: int, queries: int, topk: int, chunk: int,
                 rounds: int = 5) -> dict:
    """Queries/s of faiss and gadms (fp32, fp16) on the same gallery,
    timed round-robin; the median of ``rounds``."""
    import faiss

    from gadms.apis import chunked_topk
    fp32 = _gallery(size, torch.float32)
    fp16 = fp32.half()
    query = torch.nn.functional.normalize(torch.randn(queries, DIM), dim=1)
    index = faiss.IndexFlatIP(DIM)
    index.add(fp32.numpy())
    searches = {
        'faiss': lambda: index.search(query.numpy(), topk),
        'gadms fp32': lambda: chunked_topk(query, fp32, topk, chunk),
        'gadms fp16': lambda: chunked_topk(query, fp16, topk, chunk),
    }
    times = {name: [] for name in searches}
    for name, search in searches.items():  # warm-up
        search()
    for _ in range(rounds):
        for name, search in searches.items():
            start = time.perf_counter()
            search()
            times[name].append(time.perf_counter() - start)
    speed = {name: queries / statistics.median(t)
             for name, t in times.items()}
    return dict(size=size, threads=torch.get_num_threads(), **speed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+',
                        default=[10_000, 100_000, 1_000_000])
    parser.add_argument('--backends', nargs='+',
                        default=['gadms-fp16', 'gadms-fp32', 'faiss'])
    parser.add_argument('--queries', type=int, default=256)
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument('--chunk', type=int,
                        help='gallery rows per step (default: '
                        'gadms.apis.search.default_chunk_rows)')
    parser.add_argument('--side-by-side', action='store_true')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side_by_side:
        print('| gallery | faiss q/s | gadms fp32 q/s | gadms fp16 q/s | '
              'fp32 / faiss | fp16 / faiss |')
        print('| --- | --- | --- | --- | --- | --- |')
        for size in args.sizes:
            r = side_by_side(size, args.queries, args.topk, args.chunk)
            print(f'| {size:,} | {r["faiss"]:.0f} | {r["gadms fp32"]:.0f} | '
                  f'{r["gadms fp16"]:.0f} | '
                  f'{r["gadms fp32"] / r["faiss"]:.2f} | '
                  f'{r["gadms fp16"] / r["faiss"]:.2f} |')
        return
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1],
                                 args.queries, args.topk, args.chunk)))
        return
    print('| gallery | backend | gallery MiB | search peak MiB | queries/s |')
    print('| --- | --- | --- | --- | --- |')
    for size in args.sizes:
        for backend in args.backends:
            run = subprocess.run(
                [sys.executable, __file__, '--child', str(size), backend,
                 '--queries', str(args.queries), '--topk', str(args.topk)]
                + (['--chunk', str(args.chunk)] if args.chunk else []),
                capture_output=True, text=True)
            if run.returncode:
                print(f'| {size:,} | {backend} | failed: '
                      f'{run.stderr.strip().splitlines()[-1]} | | |')
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            print(f'| {size:,} | {backend} | {r["gallery_mib"]} | '
                  f'{r["search_peak_mib"]} | {r["queries_per_s"]:,} |')


if __name__ == '__main__':
    main()
