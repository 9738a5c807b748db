"""Exact top-k search over a feature gallery in bounded memory."""
from typing import Callable, Optional, Tuple

import torch

# Gallery rows scanned at a time, by default (:func:`default_chunk_rows`):
# a chunk's similarities are ``[rows, Q]`` fp32, about 8 MiB, but at least
# 1,024 rows (each chunk has fixed costs) and at most 8,192 (a chunk cast
# to fp32 stays in cache: 16,384 rows ran 0.93x faiss at 1M x 512, 8,192
# 1.10x; docs/benchmarks.md).
CHUNK_SIMILARITIES = 1 << 21
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 1 << 10, 1 << 13


def default_chunk_rows(num_queries: int, num_gallery: int) -> int:
    """Gallery rows per step of :func:`chunked_topk`: ``CHUNK_SIMILARITIES
    / num_queries`` within ``[MIN_CHUNK_ROWS, MAX_CHUNK_ROWS]``, and the
    whole gallery when it is at most two such chunks (on a small gallery the
    fixed costs of a second chunk and the merge outweigh the cache)."""
    rows = min(MAX_CHUNK_ROWS,
               max(MIN_CHUNK_ROWS, CHUNK_SIMILARITIES // max(num_queries, 1)))
    return num_gallery if num_gallery <= 2 * rows else rows


def _order_candidates(scores: torch.Tensor, indices: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by descending score, ties by ascending index."""
    by_index = indices.argsort(dim=1, stable=True)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), indices.gather(1, by_score)


# gallery rows per block of the block-maxima pre-selection (_block_topk)
BLOCK_ROWS = 16


def _sorted_column_topk(similarity: torch.Tensor,
                        k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each column of ``[C, Q]`` by a stable sort: ``[Q, k]``
    scores and rows, ties by lower row."""
    columns = similarity.t()
    order = columns.argsort(dim=1, descending=True, stable=True)[:, :k]
    return columns.gather(1, order), order


def _block_topk(similarity: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top ``k`` of each column of ``[C, Q]`` from the rows of its ``k``
    best blocks of ``BLOCK_ROWS`` rows (``C > k * BLOCK_ROWS``).

    Let ``t`` be a column's k-th largest block maximum. The k blocks at or
    above it hold at least k scores ``>= t``, so every score of the column's
    top k is ``>= t``; a score in any other block is at most that block's
    maximum, the (k+1)-th largest or below. Unless that one equals ``t``
    (the column is *ambiguous*), the other blocks hold only scores
    ``< t``, and the top k of the chosen ``k * BLOCK_ROWS`` rows is the top
    k of the column, ties by lower row included. One pass over the chunk
    (the block maxima) instead of ``topk``'s strided selection over every
    row: 4x less time on 2,048 x 256 here.

    Returns:
        tuple: ``scores [Q, k]``, ``rows [Q, k]`` (ordered as a stable
        sort where no two scores are equal) and ``ambiguous [Q]`` (bool):
        columns whose result is not valid and must be searched otherwise.
    """
    rows, queries = similarity.shape
    whole = rows // BLOCK_ROWS * BLOCK_ROWS
    maxima = similarity[:whole].view(-1, BLOCK_ROWS, queries).amax(dim=1)
    if whole < rows:  # the last, shorter block
        maxima = torch.cat([maxima, similarity[whole:].amax(
            dim=0, keepdim=True)])
    # query-major from here: topk along contiguous rows is the fast one
    top_maxima, blocks = maxima.t().contiguous().topk(k + 1, dim=1)
    ambiguous = top_maxima[:, k] == top_maxima[:, k - 1]
    offsets = torch.arange(BLOCK_ROWS, device=similarity.device)
    candidates = (blocks[:, :k, None] * BLOCK_ROWS + offsets).view(
        queries, -1)
    outside = candidates >= rows  # past the end of a shorter last block
    scores = similarity.t().gather(1, candidates.clamp_(max=rows - 1))
    # the k blocks hold at least k real scores: padding never gets in
    scores.masked_fill_(outside, float('-inf'))
    # ties at the k-th candidate: topk's choice among them is arbitrary
    scores, picked = scores.topk(k + 1, dim=1)
    ambiguous |= scores[:, k] == scores[:, k - 1]
    return (scores[:, :k].contiguous(),
            candidates.gather(1, picked[:, :k]), ambiguous)


def _chunk_topk(similarity: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each column of ``[C, Q]`` (gallery rows x queries),
    returned per query as ``[Q, k]``, ties broken by lower gallery row.

    Chunks of more than ``k`` blocks go through :func:`_block_topk`; the
    rest, and its ambiguous columns, through ``torch.topk``. ``topk`` may
    keep any of several rows tied with the k-th value. That can only
    happen when the (k+1)-th largest value equals the k-th, so one ``topk``
    of ``k + 1`` finds those columns (no extra pass over the chunk), and
    they are re-ranked with a stable sort.
    """
    if k == similarity.shape[0]:  # every row is kept
        scores, indices = similarity.topk(k, dim=0)
        return scores.t(), indices.t()
    if similarity.shape[0] > k * BLOCK_ROWS:
        scores, indices, ambiguous = _block_topk(similarity, k)
    else:
        scores, indices = similarity.topk(k + 1, dim=0)
        ambiguous = scores[k] == scores[k - 1]
        scores, indices = (scores[:k].t().contiguous(),
                           indices[:k].t().contiguous())
    if ambiguous.any():
        queries = ambiguous.nonzero()[:, 0]
        scores[queries], indices[queries] = _sorted_column_topk(
            similarity[:, queries], k)
    return scores, indices


def _chunk_candidates(similarity: torch.Tensor, start: int,
                      k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A chunk's top ``k`` per query (``[Q, k]``, or fewer on a short
    chunk), ordered as a stable full sort, with gallery indices offset by
    the chunk's first row ``start``."""
    scores, indices = _chunk_topk(similarity, min(k, similarity.shape[0]))
    return _order_candidates(scores, indices + start)


def _similarity_function(queries: torch.Tensor,
                         rows: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from a gallery chunk ``[C, D]`` (``C <= rows``) to its
    dot products with ``queries`` ``[Q, D]``, gallery-major ``[C, Q]``
    (the faster matrix-product shape on CPU).

    On CPU with oneDNN enabled (``torch.backends.mkldnn``), the queries are
    packed once into oneDNN's blocked layout as the weight of a linear
    layer, the kernels PyTorch's compiler uses for packed linear layers:
    197 GFLOP/s against ``torch.mm``'s (MKL) 175 on these shapes here,
    which is what lets exact search keep up with faiss
    (docs/benchmarks.md).
    Elsewhere ``torch.mm`` writes into one reused buffer.
    """
    if (queries.device.type == 'cpu' and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled):
        packed = torch.ops.mkldnn._reorder_linear_weight(queries, rows)
        return lambda chunk: torch.ops.mkldnn._linear_pointwise(
            chunk, packed, None, 'none', [], '')
    products = queries.new_empty((rows, queries.shape[0]))
    return lambda chunk: torch.mm(chunk, queries.t(),
                                  out=products[:len(chunk)])


def _queries_to_update(similarity: torch.Tensor, best_scores: torch.Tensor,
                       k: int) -> Optional[torch.Tensor]:
    """The queries (indices into ``Q``) whose kept top-k a chunk's
    ``[C, Q]`` similarities can change, or ``None`` (all of them) while
    fewer than ``k`` items are kept.

    A query changes only if some score in the chunk beats its k-th kept
    score. A score equal to it cannot enter: the chunk's rows have higher
    gallery indices than every kept item, so on a tie they rank after. On
    a large gallery most chunks change few queries, and the per-chunk
    top-k (as costly as a fifth of the matrix product) is skipped for the
    rest.
    """
    if best_scores.shape[1] < k:
        return None
    return (similarity.amax(dim=0) > best_scores[:, -1]).nonzero()[:, 0]


def _merge(best_scores: torch.Tensor, best_indices: torch.Tensor,
           scores: torch.Tensor, indices: torch.Tensor,
           k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` of the kept ``[Q, *]`` candidates and a later chunk's:
    the kept ones hold lower indices, so a stable sort keeps them first
    on ties."""
    merged_scores = torch.cat([best_scores, scores], dim=1)
    merged_indices = torch.cat([best_indices, indices], dim=1)
    order = merged_scores.argsort(dim=1, descending=True, stable=True)[:, :k]
    return merged_scores.gather(1, order), merged_indices.gather(1, order)


def chunked_topk(queries: torch.Tensor,
                 gallery: torch.Tensor,
                 k: int,
                 chunk_size: Optional[int] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` gallery items with the largest dot product per query.

    The gallery is scanned ``chunk_size`` rows at a time (cast to fp32 per
    chunk, so an fp16 gallery stays fp16 in memory); peak extra memory is
    ``Q x chunk_size`` similarities whatever the gallery size. A chunk's
    top-k is taken only for the queries it can change (those with a score
    above their current k-th). Equal scores are ordered by gallery index,
    so results equal a stable full sort.

    Args:
        queries (Tensor): ``[Q, D]``.
        gallery (Tensor): ``[G, D]``.
        k (int): Results per query (at most ``G``).
        chunk_size (int, optional): Gallery rows per step (default:
            :func:`default_chunk_rows`).

    Returns:
        tuple: ``scores [Q, k]`` (fp32, descending) and ``indices [Q, k]``
        (int64 gallery rows).
    """
    num_gallery = gallery.shape[0]
    if not 0 < k <= num_gallery:
        raise ValueError(f'k must be in [1, {num_gallery}], got {k}')
    queries = queries.float()
    chunk_size = chunk_size or default_chunk_rows(len(queries), num_gallery)
    best_scores = queries.new_empty((queries.shape[0], 0))
    best_indices = torch.empty((queries.shape[0], 0), dtype=torch.long,
                               device=queries.device)
    rows = min(chunk_size, num_gallery)
    similarity_to = _similarity_function(queries, rows)
    # reused by every chunk: a fresh multi-MB tensor per chunk costs page
    # faults (measured ~9% of the search)
    cast = queries.new_empty((rows, gallery.shape[1])) if (
        gallery.dtype, gallery.device) != (queries.dtype,
                                           queries.device) else None
    for start in range(0, num_gallery, chunk_size):
        chunk = gallery[start:start + chunk_size]
        if cast is not None:
            chunk = cast[:len(chunk)].copy_(chunk)
        similarity = similarity_to(chunk)
        updated = _queries_to_update(similarity, best_scores, k)
        if updated is None:
            best_scores, best_indices = _merge(
                best_scores, best_indices,
                *_chunk_candidates(similarity, start, k), k)
        elif len(updated):
            # index_select / index_copy_: cheaper per call than indexing
            scores, indices = _merge(
                best_scores.index_select(0, updated),
                best_indices.index_select(0, updated),
                *_chunk_candidates(similarity.index_select(1, updated),
                                   start, k), k)
            best_scores.index_copy_(0, updated, scores)
            best_indices.index_copy_(0, updated, indices)
    return best_scores, best_indices


def faiss_topk(queries: torch.Tensor, gallery: torch.Tensor,
               k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact inner-product top-k with faiss' ``IndexFlatIP`` (optional
    dependency ``faiss-cpu``): same results as :func:`chunked_topk` except
    for the order of exactly tied scores. The gallery is copied to fp32."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError("backend='faiss' needs faiss: pip install "
                          'faiss-cpu') from err
    num_gallery = gallery.shape[0]
    if not 0 < k <= num_gallery:
        raise ValueError(f'k must be in [1, {num_gallery}], got {k}')
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery.float().contiguous().numpy())
    scores, indices = index.search(queries.float().contiguous().numpy(), k)
    return torch.from_numpy(scores), torch.from_numpy(indices).long()
