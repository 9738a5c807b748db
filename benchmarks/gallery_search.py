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

``--approximate`` compares the approximate index (IVF-PQ candidates
re-ranked exactly, ``gadms.apis.approximate``) with exact search, in one
process, on a gallery written as a memory-mapped fp16 file (``--data-dir``;
10M x 512 is 10 GB). The features are drawn with the structure of person
features rather than uniformly on the sphere (where no index can beat a
scan): people share attribute directions (colours, garments...), each
person's images lie near the person's centre, and a query lies near one
person's centre. Reported: recall@10 against exact search on the same
queries, queries per second of each, the build time, and the approximate
index's bytes per image (the re-ranking reads the fp16 rows from the
file):

    .venv/bin/python benchmarks/gallery_search.py --approximate \
        --sizes 1000000 10000000 --data-dir /tmp/gadms_features
"""
import argparse
import json
import os
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


# the synthetic person features of --approximate: attribute slots, the
# values of each, images per person, and how far an image / a query lies
# from its person's centre (cosine about 0.85 / 0.75)
SLOTS, VALUES, IMAGES_PER_PERSON = 8, 12, 20
IMAGE_NOISE, QUERY_NOISE = 0.6, 0.9
ROWS_PER_WRITE = 200_000


def _person_centres(people: int, generator: torch.Generator
                    ) -> torch.Tensor:
    """``[people, DIM]``: each person a sum of one value per attribute
    slot and a direction of their own."""
    values = torch.nn.functional.normalize(
        torch.randn(SLOTS, VALUES, DIM, generator=generator), dim=-1)
    choice = torch.randint(VALUES, (people, SLOTS), generator=generator)
    shared = values[torch.arange(SLOTS), choice].sum(1) / SLOTS ** 0.5
    own = torch.nn.functional.normalize(
        torch.randn(people, DIM, generator=generator), dim=-1)
    return torch.nn.functional.normalize(shared + own, dim=-1)


def _near(centres: torch.Tensor, noise: float,
          generator: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(
        centres + noise * torch.randn(centres.shape, generator=generator)
        / DIM ** 0.5, dim=-1)


def person_features(size: int, queries: int, path: str) -> tuple:
    """A memory-mapped ``[size, DIM]`` fp16 gallery at ``path`` (written
    once, reused) and ``[queries, DIM]`` queries."""
    import numpy as np
    generator = torch.Generator().manual_seed(0)
    centres = _person_centres(max(1, size // IMAGES_PER_PERSON), generator)
    if not os.path.exists(path):
        data = np.lib.format.open_memmap(path + '.part', 'w+', np.float16,
                                         (size, DIM))
        for start in range(0, size, ROWS_PER_WRITE):
            rows = min(ROWS_PER_WRITE, size - start)
            owner = torch.randint(len(centres), (rows, ),
                                  generator=generator)
            data[start:start + rows] = _near(
                centres[owner], IMAGE_NOISE, generator).half().numpy()
        data.flush()
        del data
        os.replace(path + '.part', path)
    gallery = torch.from_numpy(np.load(path, mmap_mode='r'))
    asked = torch.randint(len(centres), (queries, ), generator=generator)
    return gallery, _near(centres[asked], QUERY_NOISE, generator)


def approximate(size: int, queries: int, exact_queries: int, topk: int,
                data_dir: str) -> dict:
    """Exact and approximate search on one gallery, side by side."""
    import warnings

    from gadms.apis import GalleryIndex, chunked_topk
    from gadms.apis.approximate import IVFPQSettings, serialize
    os.makedirs(data_dir, exist_ok=True)
    with warnings.catch_warnings():  # a read-only memory map: never written
        warnings.simplefilter('ignore', UserWarning)
        gallery, query = person_features(
            size, queries, os.path.join(data_dir, f'persons_{size}.npy'))
    index = GalleryIndex(gallery, [], None, 'benchmark')
    start = time.perf_counter()
    index.approximate(IVFPQSettings(), progress=False)
    build = time.perf_counter() - start
    chunked_topk(query[:8], gallery, topk)  # warm-up: pages the file in
    start = time.perf_counter()
    _, exact = chunked_topk(query[:exact_queries], gallery, topk)
    exact_seconds = time.perf_counter() - start
    index.topk(query[:8], topk)  # warm-up
    start = time.perf_counter()
    _, found = index.topk(query, topk)
    approximate_seconds = time.perf_counter() - start
    hits = sum(len(set(a.tolist()) & set(b.tolist()))
               for a, b in zip(found[:exact_queries], exact))
    exact_qps = exact_queries / exact_seconds
    approximate_qps = queries / approximate_seconds
    return dict(size=size, dim=DIM, recall_at_10=round(hits / exact.numel(),
                                                       4),
                exact_qps=round(exact_qps, 1),
                approximate_qps=round(approximate_qps, 1),
                speed_up=round(approximate_qps / exact_qps, 1),
                build_s=round(build), lists=index.ann.nlist,
                index_bytes_per_image=round(len(serialize(index.ann)) / size,
                                            1),
                fp16_bytes_per_image=2 * DIM,
                threads=torch.get_num_threads())


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
    parser.add_argument('--approximate', action='store_true')
    parser.add_argument('--exact-queries', type=int, default=200,
                        help='--approximate: queries exact search times '
                        '(and recall is measured on)')
    parser.add_argument('--data-dir', default='/tmp/gadms_gallery_features',
                        help='--approximate: where the fp16 galleries are '
                        'written (and reused)')
    parser.add_argument('--child', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.approximate:
        print('| gallery | recall@10 | exact q/s | approximate q/s | '
              'speed-up | build s | index B/image | fp16 B/image |')
        print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
        for size in args.sizes:
            r = approximate(size, max(args.queries, args.exact_queries),
                            args.exact_queries, args.topk, args.data_dir)
            print(json.dumps(r), file=sys.stderr)
            print(f'| {size:,} | {r["recall_at_10"]} | {r["exact_qps"]} | '
                  f'{r["approximate_qps"]} | {r["speed_up"]}x | '
                  f'{r["build_s"]} | {r["index_bytes_per_image"]} | '
                  f'{r["fp16_bytes_per_image"]} |', flush=True)
        return
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
