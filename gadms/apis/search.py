"""Exact top-k search over a feature gallery in bounded memory."""
from typing import Tuple

import torch

# gallery rows scanned at a time: the similarity block (rows x queries)
# stays cache-sized, which makes the top-k pass cheap (measured fastest at
# 1M x 512 with 256 queries on 2 CPU cores, docs/benchmarks.md)
DEFAULT_CHUNK = 1 << 13


def _order_candidates(scores: torch.Tensor, indices: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by descending score, ties by ascending index."""
    by_index = indices.argsort(dim=1, stable=True)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), indices.gather(1, by_score)


def _chunk_topk(similarity: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each column of ``[C, Q]`` (gallery rows x queries),
    returned per query as ``[Q, k]``, ties broken by lower gallery row.

    ``torch.topk`` may keep any of several rows tied with the k-th value.
    That can only happen when the (k+1)-th largest value equals the k-th,
    so one ``topk`` of ``k + 1`` finds those queries (no extra pass over
    the chunk), and they are re-ranked with a stable sort.
    """
    if k == similarity.shape[0]:  # every row is kept
        scores, indices = similarity.topk(k, dim=0)
        return scores.t(), indices.t()
    scores, indices = similarity.topk(k + 1, dim=0)
    ambiguous = scores[k] == scores[k - 1]
    scores, indices = scores[:k].t().contiguous(), indices[:k].t().contiguous()
    if ambiguous.any():
        queries = ambiguous.nonzero()[:, 0]
        columns = similarity[:, queries].t()
        order = columns.argsort(dim=1, descending=True, stable=True)[:, :k]
        scores[queries] = columns.gather(1, order)
        indices[queries] = order
    return scores, indices


def chunked_topk(queries: torch.Tensor,
                 gallery: torch.Tensor,
                 k: int,
                 chunk_size: int = DEFAULT_CHUNK
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` gallery items with the largest dot product per query.

    The gallery is scanned ``chunk_size`` rows at a time (cast to fp32 per
    chunk, so an fp16 gallery stays fp16 in memory); peak extra memory is
    ``Q x chunk_size`` similarities whatever the gallery size. Equal scores
    are ordered by gallery index, so results equal a stable full sort.

    Args:
        queries (Tensor): ``[Q, D]``.
        gallery (Tensor): ``[G, D]``.
        k (int): Results per query (at most ``G``).
        chunk_size (int): Gallery rows per step.

    Returns:
        tuple: ``scores [Q, k]`` (fp32, descending) and ``indices [Q, k]``
        (int64 gallery rows).
    """
    num_gallery = gallery.shape[0]
    if not 0 < k <= num_gallery:
        raise ValueError(f'k must be in [1, {num_gallery}], got {k}')
    queries = queries.float()
    best_scores = queries.new_empty((queries.shape[0], 0))
    best_indices = torch.empty((queries.shape[0], 0), dtype=torch.long,
                               device=queries.device)
    # buffers reused by every chunk: fresh multi-MB tensors per chunk cost
    # page faults (measured ~9% of the search)
    rows = min(chunk_size, num_gallery)
    products = queries.new_empty((rows, queries.shape[0]))
    cast = queries.new_empty((rows, gallery.shape[1])) if (
        gallery.dtype, gallery.device) != (queries.dtype,
                                           queries.device) else None
    for start in range(0, num_gallery, chunk_size):
        chunk = gallery[start:start + chunk_size]
        if cast is not None:
            chunk = cast[:len(chunk)].copy_(chunk)
        # [C, Q]: gallery-major products are the faster GEMM on CPU
        similarity = torch.mm(chunk, queries.t(),
                              out=products[:len(chunk)])
        scores, indices = _chunk_topk(similarity, min(k, chunk.shape[0]))
        scores, indices = _order_candidates(scores, indices + start)
        # earlier chunks hold lower indices: a stable merge keeps them first
        merged_scores = torch.cat([best_scores, scores], dim=1)
        merged_indices = torch.cat([best_indices, indices], dim=1)
        order = merged_scores.argsort(dim=1, descending=True,
                                      stable=True)[:, :k]
        best_scores = merged_scores.gather(1, order)
        best_indices = merged_indices.gather(1, order)
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
