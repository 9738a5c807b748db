"""Time of the retrieval metric on a CUHK-PEDES-size similarity matrix.

    .venv/bin/python benchmarks/retrieval_metric.py

6,156 queries x 3,074 gallery images of 1,000 identities (the CUHK-PEDES
test split's shape). Compares gadms's metric (ranks of the relevant images
counted by comparison) with the full-sort protocol it replaces (a stable
argsort of every row), in one process, on four kinds of similarity matrix
with more and more ties: continuous float32 on a cosine-like scale, the
same rounded to fp16 and to bf16 (what evaluation under autocast or an
fp16 gallery gives), and N(0, 1) rounded to 0.1 (about 60 distinct values
per row). For each: the minimum of 3 runs of each method, their ratio,
the distinct values per row, and whether the results are identical; and
the share of the metric's time spent refusing non-finite similarities
(the row-sum check of ``non_finite_rows``, run on every block).
"""
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


def min_seconds(function, repeats: int = 3) -> tuple:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def similarity_kinds(generator: torch.Generator) -> dict:
    """The four matrices, float32 (rounded ones hold the rounded values)."""
    features = torch.nn.functional.normalize(
        torch.randn(QUERIES + GALLERY, 64, generator=generator), dim=1)
    cosine = features[:QUERIES] @ features[QUERIES:].t()
    return {
        'continuous float32': cosine,
        'rounded to fp16': cosine.half().float(),
        'rounded to bf16': cosine.bfloat16().float(),
        'N(0, 1) rounded to 0.1': (torch.randn(
            QUERIES, GALLERY, generator=generator) * 10).round() / 10,
    }


def distinct_per_row(similarity: torch.Tensor) -> float:
    sorted_rows = similarity.sort(dim=1)[0]
    changes = (sorted_rows[:, 1:] != sorted_rows[:, :-1]).sum(dim=1) + 1
    return float(changes.double().mean())


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    gallery_pids = torch.randint(0, IDENTITIES, (GALLERY, ),
                                 generator=generator)
    query_pids = gallery_pids[torch.randint(0, GALLERY, (QUERIES, ),
                                            generator=generator)]
    print(f'{QUERIES} x {GALLERY}, {torch.get_num_threads()} threads, '
          'min of 3')
    print('| similarity values | distinct values per row | gadms metric s '
          '| stable full sort s | metric / sort | identical |')
    print('| --- | ---: | ---: | ---: | ---: | --- |')
    for kind, similarity in similarity_kinds(generator).items():
        ours, metrics = min_seconds(lambda: compute_retrieval_metrics(
            similarity, query_pids, gallery_pids))
        full, reference = min_seconds(lambda: full_sort_metrics(
            similarity, query_pids, gallery_pids))
        same = all(abs(metrics[k] - reference[k]) < 1e-9 for k in reference)
        print(f'| {kind} | {distinct_per_row(similarity):,.0f} | '
              f'{ours:.3f} | {full:.3f} | {ours / full:.2f} | {same} |')
    similarity = similarity_kinds(generator)['continuous float32']
    check, _ = min_seconds(lambda: non_finite_rows(similarity))
    ours, _ = min_seconds(lambda: compute_retrieval_metrics(
        similarity, query_pids, gallery_pids))
    print(f'non-finite check: {check * 1000:.2f} ms '
          f'({100 * check / ours:.2f}% of the metric)')


if __name__ == '__main__':
    main()
