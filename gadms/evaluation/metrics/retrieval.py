"""Text-to-image person retrieval metrics: R@K (CMC), mAP and mINP.

For a query caption the whole gallery is ranked by descending similarity;
an image is relevant iff its pid equals the query's pid. Ties keep gallery
order (a stable sort), so results do not depend on the sorting backend.
Only the ranks of each query's relevant images are needed, and they are
counted by comparison instead of sorting every row (see
:func:`_rank_statistics`).

- ``R@K``: share of queries with a relevant image among the first K.
- ``AP``: mean of precision@k over the ranks k of the relevant images.
- ``INP``: (number of relevant images) / (rank of the last relevant one).

All are averaged over queries and reported in percent. **Queries without any
relevant image in the gallery are left out** of every average (AP and INP
are undefined for them); the metric logs how many were left out, and raises
if no query is left.

A similarity that is NaN or infinite (a diverged model, NaN weights or
features) has no place in a ranking: comparisons with NaN are all false, so
such a matrix would score R1 100. The metric refuses it with
:class:`NonFiniteScoresError`, which counts the values and names the
queries.
"""
import json
import logging
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from terminaltables import AsciiTable

from gadms.common.atomic import atomic_write
from gadms.registry import METRICS

# Comparisons of relevant images against a gallery row are made for at most
# this many (relevant image, gallery image) pairs at a time, which bounds
# memory for any gallery size.
DEFAULT_PAIRS_PER_CHUNK = 1 << 24
# the most query indices quoted in a NonFiniteScoresError
MAX_LISTED_QUERIES = 10


class NonFiniteScoresError(ValueError):
    """A similarity matrix holds NaN or infinite values."""


def non_finite_rows(similarity: torch.Tensor
                    ) -> Tuple[torch.Tensor, int]:
    """Rows of ``similarity [Q, G]`` holding NaN or Inf, and how many such
    values there are.

    One row sum in the matrix's own dtype finds them (NaN and +-Inf
    propagate through addition, and +Inf + -Inf is NaN) at the cost of a
    fast reduction (about 1% of the metric at CUHK-PEDES size; summing in
    float64 would cost 25%); only the rows whose sum is not finite are
    inspected value by value, since a sum of large finite values can
    overflow (fp16 rows of a large gallery: correct, only slower).
    """
    sums = similarity.sum(dim=1)
    suspect = (~torch.isfinite(sums)).nonzero()[:, 0]
    if not len(suspect):
        return suspect, 0
    bad_values = ~torch.isfinite(similarity[suspect])
    return suspect[bad_values.any(dim=1)], int(bad_values.sum())


def _finite_blocks(blocks: Iterable[Tuple[int, torch.Tensor]]
                   ) -> Iterator[Tuple[int, torch.Tensor]]:
    """Pass on ``(first query, similarity block)`` pairs while they are
    finite. After a non-finite block the rest are only checked, so that
    the error counts every non-finite value and query.

    Raises:
        NonFiniteScoresError: at the end, when any block was not finite.
    """
    bad_rows: List[torch.Tensor] = []
    num_values = 0
    for first_query, similarity in blocks:
        rows, count = non_finite_rows(similarity)
        if count:
            bad_rows.append(rows + first_query)
            num_values += count
        elif not bad_rows:
            yield first_query, similarity
    if bad_rows:
        rows = torch.cat(bad_rows)
        listed = ', '.join(str(int(r)) for r in rows[:MAX_LISTED_QUERIES])
        more = len(rows) - MAX_LISTED_QUERIES
        raise NonFiniteScoresError(
            f'{num_values} similarities are NaN or infinite, in '
            f'{len(rows)} queries (query indices {listed}'
            f'{f" and {more} more" if more > 0 else ""}); the model or its '
            'features hold NaN or Inf (a diverged training, a broken '
            'checkpoint), so no ranking can be scored')


def _relevant_table(gallery_pids: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gallery indices of each identity: ``pids [P]`` (sorted unique) and
    ``table [P, R]`` (ascending indices, padded with -1 to the largest
    identity's image count ``R``)."""
    pids, inverse, counts = gallery_pids.unique(return_inverse=True,
                                                return_counts=True)
    order = torch.sort(inverse, stable=True)[1]  # by pid, then index
    starts = counts.cumsum(0) - counts
    slot = torch.arange(len(order), device=order.device) - \
        starts[inverse[order]]
    table = torch.full((len(pids), int(counts.max())), -1,
                       dtype=torch.long, device=gallery_pids.device)
    table[inverse[order], slot] = order
    return pids, table


def _stable_ranks(similarity: torch.Tensor,
                  relevant: torch.Tensor) -> torch.Tensor:
    """1-based ranks of the ``relevant [Q, R]`` gallery columns (-1: none)
    of each row of ``similarity [Q, G]`` under a stable descending sort:
    ``1 + #{greater} + #{equal, earlier}``; ``G + 1`` where there is none.

    Rows are ordered by their number of relevant columns, so slot ``r``
    concerns a prefix of them (a view, no copy). Per slot, one pass counts
    the greater values and one marks the equal ones (a byte per value); the
    earlier ties are then counted from the positions of the equal values of
    the rows that have any besides the relevant column itself: few per row
    even when the similarities are rounded (fp16, bf16), so tie-heavy rows
    cost about what continuous ones do.
    """
    num_gallery = similarity.shape[1]
    counts = (relevant >= 0).sum(dim=1)
    order = counts.argsort(descending=True, stable=True)
    rows = similarity[order]
    columns = relevant[order]
    values = rows.gather(1, columns.clamp(min=0))
    ranks = torch.full(relevant.shape, num_gallery + 1, dtype=torch.long,
                       device=similarity.device)
    sorted_counts = counts[order]
    for slot in range(relevant.shape[1]):
        size = int((sorted_counts > slot).sum())
        lines, value = rows[:size], values[:size, slot:slot + 1]
        slot_ranks = 1 + (lines > value).sum(dim=1)
        equal = lines == value
        shared = (equal.sum(dim=1) > 1).nonzero()[:, 0]
        if len(shared):
            row, position = equal[shared].nonzero(as_tuple=True)
            earlier = position < columns[shared, slot][row]
            slot_ranks[shared] += torch.bincount(row[earlier],
                                                 minlength=len(shared))
        ranks[order[:size], slot] = slot_ranks
    return ranks


def _rank_statistics(similarity: torch.Tensor, query_pids: torch.Tensor,
                     gallery_pids: torch.Tensor, topk: Sequence[int]
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                torch.Tensor]:
    """Per-query hits@K, AP and INP for one block of queries, from the
    ranks of the relevant images only (no sort of the gallery).

    Under a stable descending sort, gallery image ``g`` lands at rank
    ``1 + #{j: s_j > s_g} + #{j < g: s_j = s_g}``; those counts give the
    exact ranks of each query's few relevant images, from which R@K, AP and
    INP follow as in the full-sort protocol, ties included.

    Args:
        similarity (Tensor): ``[Q, G]``.
        query_pids (Tensor): ``[Q]``.
        gallery_pids (Tensor): ``[G]``.
        topk (Sequence[int]): The K of R@K.

    Returns:
        tuple: ``hits [Q, len(topk)]`` (bool), ``ap [Q]``, ``inp [Q]``,
        ``valid [Q]`` (bool, query has a relevant image). ``ap`` and ``inp``
        are 0 where ``valid`` is False.
    """
    pids, table = _relevant_table(gallery_pids)
    position = torch.searchsorted(pids, query_pids).clamp(max=len(pids) - 1)
    known = pids[position] == query_pids
    relevant = table[position]  # [Q, R] gallery indices, -1 = none
    relevant[~known] = -1
    present = relevant >= 0
    ranks = _stable_ranks(similarity, relevant)
    ranks = torch.sort(ranks, dim=1)[0]  # ascending, absent ones last
    num_relevant = present.sum(dim=1)
    valid = num_relevant > 0
    first_hit = ranks[:, 0]
    hits = first_hit[:, None] <= torch.as_tensor(topk,
                                                 device=ranks.device)
    order = torch.arange(1, ranks.shape[1] + 1, device=ranks.device,
                         dtype=torch.float64)
    precision = torch.where(present.sort(dim=1, descending=True)[0],
                            order / ranks.double(), 0.0)
    ap = precision.sum(dim=1) / num_relevant.clamp(min=1)
    last_hit = ranks.gather(1, (num_relevant - 1).clamp(min=0)[:, None])[:, 0]
    inp = torch.where(valid, num_relevant.double() / last_hit,
                      torch.zeros_like(ap))
    return hits, ap, inp, valid


def _summarise(hits: torch.Tensor, ap: torch.Tensor, inp: torch.Tensor,
               valid: torch.Tensor, topk: Sequence[int]) -> Dict[str, float]:
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError('no query has a relevant image in the gallery')
    metrics = {
        f'R{k}': 100.0 * hits[valid, i].double().mean().item()
        for i, k in enumerate(topk)
    }
    metrics['mAP'] = 100.0 * ap[valid].mean().item()
    metrics['mINP'] = 100.0 * inp[valid].mean().item()
    return metrics


def _pairs_per_query(gallery_pids: torch.Tensor) -> int:
    """Comparisons per query: every gallery image against each of the
    query's relevant images (at most the largest identity's count)."""
    return len(gallery_pids) * int(gallery_pids.unique(
        return_counts=True)[1].max())


def _query_blocks(num_queries: int, pairs_per_query: int,
                  pairs_per_chunk: int) -> Iterator[slice]:
    """Slices of queries holding at most ``pairs_per_chunk`` pairs each."""
    step = max(1, pairs_per_chunk // max(1, pairs_per_query))
    for start in range(0, num_queries, step):
        yield slice(start, start + step)


def _concat_blocks(blocks: Iterable[Tuple[torch.Tensor, ...]]
                   ) -> Tuple[torch.Tensor, ...]:
    return tuple(torch.cat(column) for column in zip(*blocks))


def compute_retrieval_metrics(similarity: torch.Tensor,
                              query_pids: torch.Tensor,
                              gallery_pids: torch.Tensor,
                              topk: Sequence[int] = (1, 5, 10)
                              ) -> Dict[str, float]:
    """Text-to-image retrieval metrics from a similarity matrix.

    Args:
        similarity (Tensor): ``[Q, G]``, larger is more similar.
        query_pids (Tensor): ``[Q]`` identities of the queries.
        gallery_pids (Tensor): ``[G]`` identities of the gallery images.
        topk (Sequence[int]): K values of R@K. Defaults to (1, 5, 10).

    Returns:
        dict: ``R1``, ``R5``, ``R10`` (one per K), ``mAP`` and ``mINP``, in
        percent, over the queries that have a relevant gallery image.

    Raises:
        NonFiniteScoresError: ``similarity`` holds NaN or Inf (the message
            counts them and names the queries).
    """
    similarity = torch.as_tensor(similarity)
    query_pids = torch.as_tensor(query_pids, device=similarity.device)
    gallery_pids = torch.as_tensor(gallery_pids, device=similarity.device)
    if similarity.shape != (len(query_pids), len(gallery_pids)):
        raise ValueError(f'similarity has shape {tuple(similarity.shape)}, '
                         f'expected ({len(query_pids)}, {len(gallery_pids)})')
    blocks = ((block.start, similarity[block]) for block in _query_blocks(
        len(query_pids), _pairs_per_query(gallery_pids),
        DEFAULT_PAIRS_PER_CHUNK))
    stats = _concat_blocks(
        _rank_statistics(block, query_pids[first:first + len(block)],
                         gallery_pids, topk)
        for first, block in _finite_blocks(blocks))
    return _summarise(*stats, topk=topk)


def _ranking_lines(results: List[dict], topk: int,
                   pairs_per_chunk: int) -> Iterator[dict]:
    """One gallery's rankings, a dict per query (without ``dataset``)."""
    gallery_feats = torch.stack([r['image_feat'] for r in results]).float()
    query_feats = torch.cat([r['text_feats'] for r in results]).float()
    owners = [(r, c) for r in results for c in (r['captions'] or [None] *
                                                 len(r['text_feats']))]
    k = min(topk, len(results))
    for block in _query_blocks(len(owners), len(results), pairs_per_chunk):
        similarity = query_feats[block] @ gallery_feats.t()
        scores, order = torch.sort(similarity, dim=1, descending=True,
                                   stable=True)
        start = block.start
        for row, (indices, row_scores) in enumerate(
                zip(order[:, :k].tolist(), scores[:, :k].tolist())):
            result, caption = owners[start + row]
            yield dict(query=start + row, caption=caption, pid=result['pid'],
                       ranking=[dict(index=g, path=results[g]['img_path'],
                                     pid=results[g]['pid'], score=score)
                                for g, score in zip(indices, row_scores)])


@METRICS.register_module()
class TextPersonRetrievalMetric(BaseMetric):
    """Text-to-image person retrieval: R@1/5/10, mAP and mINP (percent).

    Consumes the retriever's predictions, one data sample per gallery image
    with ``image_feat [D]``, ``text_feats [N, D]`` (its captions, the
    queries) and ``pid``. Every query is ranked against every gallery image
    by the dot product of the normalised features, a block of queries at a
    time, so memory stays bounded for large galleries. See the module
    docstring for the exact protocol, including the rule for queries whose
    identity is absent from the gallery.

    **Several benchmarks in one run.** When the samples come from several
    datasets (a ``ConcatDataset`` of test splits; each sample carries
    ``benchmark`` and ``split``), each dataset is ranked on its own
    gallery, its metrics are named ``<benchmark>/t2i/R1`` and so on, the
    unprefixed ``t2i/R1``... hold the mean over the datasets (what
    ``save_best='t2i/R1'`` selects on), and one table shows a row per
    dataset with its split.

    Args:
        topk (Sequence[int]): K values of R@K. Defaults to (1, 5, 10).
        pairs_per_chunk (int): Query-gallery pairs ranked at once.
        collect_device (str): ``'cpu'`` or ``'gpu'``, where results of
            all ranks are gathered.
        prefix (str, optional): Metric name prefix. Defaults to ``'t2i'``.
        rankings_file (str, optional): Also write every query's first
            ``rankings_topk`` gallery images here as JSON Lines, one query
            per line: ``{"dataset": "<benchmark>/<split>", "query": q,
            "caption": str, "pid": int, "ranking": [{"index": g, "path":
            str, "pid": int, "score": float}, ...]}``, best first, ties in
            gallery order as in the metrics; ``query`` and ``index``
            number the queries and gallery images of that dataset in test
            order. Written atomically by the main process.
        rankings_topk (int): Gallery images per query in ``rankings_file``.

    Use in configs::

        val_evaluator = dict(type='TextPersonRetrievalMetric')
    """

    default_prefix: Optional[str] = 't2i'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 pairs_per_chunk: int = DEFAULT_PAIRS_PER_CHUNK,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 rankings_file: Optional[str] = None,
                 rankings_topk: int = 10) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.rankings_file = rankings_file
        self.rankings_topk = rankings_topk
        # names are built in compute_metrics (the dataset goes first), so
        # BaseMetric.evaluate must not prepend the prefix again
        self.name_prefix, self.prefix = self.prefix, None
        topk = tuple(topk)
        if not topk or any(int(k) != k or k < 1 for k in topk):
            raise ValueError(f'topk must be positive integers, got {topk}')
        self.topk = topk
        self.pairs_per_chunk = pairs_per_chunk

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                dict(
                    image_feat=sample['image_feat'].cpu(),
                    text_feats=sample['text_feats'].cpu(),
                    pid=int(sample['pid']),
                    dataset=(sample.get('benchmark'), sample.get('split')),
                    img_path=sample.get('img_path'),
                    captions=sample.get('captions')))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        groups: Dict[tuple, List[dict]] = {}
        for result in results:
            groups.setdefault(result['dataset'], []).append(result)
        rows = {dataset: self._evaluate_gallery(group)
                for dataset, group in groups.items()}
        if self.rankings_file:
            self._write_rankings(groups)
        names = [dataset[0] for dataset in groups]
        if len(rows) == 1:
            (metrics, _), = rows.values()
            self._log_table(rows)
            return self._named(metrics)
        output = {}
        for (benchmark, split), (metrics, _) in rows.items():
            name = benchmark if names.count(benchmark) == 1 else (
                f'{benchmark}_{split}')
            output.update(self._named(metrics, name))
        mean = {
            key: sum(m[key] for m, _ in rows.values()) / len(rows)
            for key in next(iter(rows.values()))[0]
        }
        output.update(self._named(mean))
        self._log_table(rows, mean)
        return output

    def _named(self, metrics: Dict[str, float],
               dataset: Optional[str] = None) -> Dict[str, float]:
        prefix = '/'.join(p for p in (dataset, self.name_prefix) if p)
        return {f'{prefix}/{k}' if prefix else k: v
                for k, v in metrics.items()}

    def _evaluate_gallery(self, results: List[dict]
                          ) -> Tuple[Dict[str, float], Tuple[int, int, int]]:
        """Metrics of one gallery and (queries, gallery, left-out queries)."""
        gallery_feats = torch.stack([r['image_feat'] for r in results])
        gallery_pids = torch.tensor([r['pid'] for r in results])
        query_feats = torch.cat([r['text_feats'] for r in results])
        query_pids = torch.repeat_interleave(
            gallery_pids,
            torch.tensor([len(r['text_feats']) for r in results]))
        query_feats, gallery_feats = query_feats.float(), gallery_feats.float()
        blocks = ((block.start, query_feats[block] @ gallery_feats.t())
                  for block in _query_blocks(len(query_pids),
                                             _pairs_per_query(gallery_pids),
                                             self.pairs_per_chunk))
        hits, ap, inp, valid = _concat_blocks(
            _rank_statistics(block, query_pids[first:first + len(block)],
                             gallery_pids, self.topk)
            for first, block in _finite_blocks(blocks))
        metrics = _summarise(hits, ap, inp, valid, self.topk)
        num_skipped = int((~valid).sum())
        if num_skipped:
            print_log(
                f'{results[0]["dataset"][0] or "test set"}: {num_skipped} of '
                f'{len(query_pids)} queries have no image of their identity '
                'in the gallery and were left out',
                logger='current', level=logging.WARNING)
        return metrics, (len(query_pids), len(gallery_pids), num_skipped)

    def _write_rankings(self, groups: Dict[tuple, List[dict]]) -> None:
        """Every query's top ``rankings_topk`` (see the class docstring)."""
        with atomic_write(self.rankings_file) as f:
            for (benchmark, split), results in groups.items():
                for line in _ranking_lines(results, self.rankings_topk,
                                           self.pairs_per_chunk):
                    dataset = f'{benchmark or "-"}/{split or "-"}'
                    f.write(json.dumps(dict(dataset=dataset, **line)) + '\n')
        print_log(f'wrote the top-{self.rankings_topk} ranking of every '
                  f'query to {self.rankings_file}', logger='current')

    def _log_table(self, rows: Dict[tuple, tuple],
                   mean: Optional[Dict[str, float]] = None) -> None:
        metric_names = list(next(iter(rows.values()))[0])
        table = [['dataset', 'split', 'queries', 'gallery'] + metric_names]
        for (benchmark, split), (metrics, counts) in rows.items():
            table.append([benchmark or '-', split or '-',
                          str(counts[0]), str(counts[1])] +
                         [f'{metrics[k]:.2f}' for k in metric_names])
        if mean is not None:
            table.append(['mean', '', '', ''] +
                         [f'{mean[k]:.2f}' for k in metric_names])
        title = f'{self.name_prefix or ""} text-to-image retrieval'.strip()
        print_log('\n' + AsciiTable(table, title=title).table,
                  logger='current')
