"""Time of the retrieval metric on a CUHK-PEDES-size similarity matrix.

    .venv/bin/python benchmarks/retrieval_metric.py

6,156 queries x 3,074 gallery images of 1,000 identities (the CUHK-PEDES
test split's shape), random similarities. Compares gadms's metric (ranks
of the relevant images counted by comparison) with the full-sort protocol
it replaces (a stable argsort of every row), in one process: the median of
5 runs of each, and whether the results are identical; and the share of
the metric's time spent refusing non-finite similarities (the row-sum check
of ``non_finite_rows``, which the metric runs on every block).
"""
import statistics
import sys
import time
from os import path as osp

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from gadms.evaluation import compute_retrieval_metrics  # noqa: E402
from gadms.evaluation.metrics.retrieval import non_finite_rows  # noqa: E402

QUERIES, GALLERY, IDENTITIES = 6156, 3074, 1000


def full_sort_metrics(similarity, query_pids, gallery_pids, topk=(1, 5, 10)):
    """The protocol by a stable descending sort of every row."""
    order = torch.sort(similarity, dim=1, descending=True, stable=True)[1]
    matches = gallery_pids[order] == query_pids[:, None]
    num_relevant = matches.sum(dim=1)
    valid = num_relevant > 0
    ranks = torch.arange(1, matches.shape[1] + 1, dtype=torch.float64)
    first = matches.int().argmax(dim=1) + 1
    metrics = {f'R{k}': 100.0 * (first[valid] <= k).double().mean().item()
               for k in topk}
    precision = matches.cumsum(dim=1) / ranks
    ap = (precision * matches).sum(dim=1) / num_relevant.clamp(min=1)
    last = matches.shape[1] - matches.flip(dims=[1]).int().argmax(dim=1)
    metrics['mAP'] = 100.0 * ap[valid].mean().item()
    metrics['mINP'] = 100.0 * (num_relevant.double() / last)[valid].mean(
    ).item()
    return metrics


def median_seconds(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    gallery_pids = torch.randint(0, IDENTITIES, (GALLERY, ),
                                 generator=generator)
    query_pids = gallery_pids[torch.randint(0, GALLERY, (QUERIES, ),
                                            generator=generator)]
    similarity = torch.rand(QUERIES, GALLERY, generator=generator)
    ours, metrics = median_seconds(lambda: compute_retrieval_metrics(
        similarity, query_pids, gallery_pids))
    full, reference = median_seconds(lambda: full_sort_metrics(
        similarity, query_pids, gallery_pids))
    check, _ = median_seconds(lambda: non_finite_rows(similarity))
    same = all(abs(metrics[k] - reference[k]) < 1e-9 for k in reference)
    print(f'{QUERIES} x {GALLERY}, {torch.get_num_threads()} threads')
    print(f'gadms metric:    {ours:.3f} s')
    print(f'full-sort:       {full:.3f} s')
    print(f'non-finite check: {check * 1000:.2f} ms '
          f'({100 * check / ours:.2f}% of the metric)')
    print(f'identical: {same}')


if __name__ == '__main__':
    main()
