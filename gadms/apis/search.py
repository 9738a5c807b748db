"""Exact top-k search over a feature gallery in bounded memory."""
from typing import Tuple

import torch

DEFAULT_CHUNK = 1 << 16


def _order_candidates(scores: torch.Tensor, indices: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by descending score, ties by ascending index."""
    by_index = indices.argsort(dim=1, stable=True)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = scores.argsort(dim=1, descending=True, stable=True)
    return scores.gather(1, by_score), indices.gather(1, by_score)


def _chunk_topk(similarity: torch.Tensor,
                k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` of each row of ``[Q, C]``, ties broken by lower column.

    ``torch.topk`` may keep any of several columns tied with the k-th
    value; rows where that happens are re-ranked with a stable sort.
    """
    scores, indices = similarity.topk(k, dim=1)
    kth = scores[:, -1:]
    ambiguous = (similarity == kth).sum(1) > (scores == kth).sum(1)
    if ambiguous.any():
        rows = ambiguous.nonzero()[:, 0]
        order = similarity[rows].argsort(dim=1, descending=True,
                                         stable=True)[:, :k]
        scores[rows] = similarity[rows].gather(1, order)
        indices[rows] = order
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
    for start in range(0, num_gallery, chunk_size):
        chunk = gallery[start:start + chunk_size].to(queries)
        scores, indices = _chunk_topk(queries @ chunk.t(),
                                      min(k, chunk.shape[0]))
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
