"""Approximate search for large galleries: faiss' IVF-PQ (an inverted file
of product-quantised codes) proposes candidates, which are re-ranked by
their exact scores.

The index keeps ``64 + 8`` bytes per image (a PQ code and its id) for the
proposal; the re-ranking reads the candidates' features, which may stay
on disk (a memory-mapped fp16 array): only the rows read are paged in.
Figures at 1M and 10M images: docs/benchmarks.md
(``benchmarks/gallery_search.py --approximate``).
"""
import math
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from gadms.common.progress import Progress

# the approximate kinds an index may record (GalleryIndex.kind)
IVFPQ = 'ivfpq'
# faiss wants at least this many training rows per inverted list
ROWS_PER_LIST = 39
# the most inverted lists by default
MAX_DEFAULT_LISTS = 4096
# rows added to the faiss index at a time (bounded memory for the fp32
# copy faiss needs)
ADD_ROWS = 100_000


@dataclass
class IVFPQSettings:
    """How an IVF-PQ index is built and searched.

    Attributes:
        lists (int, optional): Inverted lists (k-means cells); default
            ``4 * sqrt(G)``, at most ``G / 39`` and 4,096 (more lists
            search faster but take longer to train on CPUs).
        code_bytes (int, optional): Bytes per PQ code; default ``D / 8``
            (it must divide ``D``).
        train_rows (int): Rows drawn to train the cells and codebooks.
        kmeans_iterations (int): Iterations of the cells' k-means.
        probe (int): Lists searched per query.
        rerank (int): Candidates re-ranked exactly per query (at least the
            ``k`` asked for).
        seed (int): The draw of the training rows.
    """

    lists: Optional[int] = None
    code_bytes: Optional[int] = None
    train_rows: int = 200_000
    kmeans_iterations: int = 10
    probe: int = 64
    rerank: int = 200
    seed: int = 0


def _faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError('an approximate index needs faiss: pip install '
                          'faiss-cpu') from err
    return faiss


def build_ivfpq(features: torch.Tensor, settings: IVFPQSettings,
                progress: bool = True):
    """An IVF-PQ faiss index (inner product) of ``features [G, D]``; the
    cells are found with an HNSW graph over their centres, so adding
    millions of rows does not compare each with every centre."""
    faiss = _faiss()
    rows, dim = features.shape
    lists = settings.lists or max(1, min(int(4 * math.sqrt(rows)),
                                         rows // ROWS_PER_LIST,
                                         MAX_DEFAULT_LISTS))
    code_bytes = settings.code_bytes or max(1, dim // 8)
    if dim % code_bytes:
        raise ValueError(f'code_bytes ({code_bytes}) must divide the '
                         f'feature size ({dim})')
    index = faiss.index_factory(dim, f'IVF{lists}_HNSW32,PQ{code_bytes}',
                                faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.niter = settings.kmeans_iterations
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(rows, min(rows, settings.train_rows),
                                replace=False))
    index.train(features[torch.from_numpy(sample)].float().numpy())
    bar = Progress(rows, 'adding to the IVF-PQ index') if progress else None
    for start in range(0, rows, ADD_ROWS):
        chunk = features[start:start + ADD_ROWS]
        index.add(chunk.float().numpy())
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return index


def ivfpq_topk(queries: torch.Tensor, index, features: torch.Tensor, k: int,
               settings: IVFPQSettings) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best rows per query: ``settings.rerank`` candidates from
    the IVF-PQ ``index`` (``settings.probe`` lists each), re-ranked by
    their exact inner products with ``features``.

    Returns:
        tuple: ``scores [Q, k]`` (fp32, descending; ``-inf`` where fewer
        than ``k`` candidates were found) and ``rows [Q, k]`` (int64).
    """
    faiss = _faiss()
    faiss.extract_index_ivf(index).nprobe = settings.probe
    queries = queries.float().contiguous()
    _, candidates = index.search(queries.numpy(), max(k, settings.rerank))
    candidates = torch.from_numpy(candidates)
    found = candidates >= 0
    # [Q, R, D] gathered rows (a memory-mapped gallery pages in these only)
    vectors = features[candidates.clamp(min=0)].float()
    exact = torch.einsum('qd,qrd->qr', queries, vectors)
    exact = exact.masked_fill(~found, float('-inf'))
    scores, order = exact.topk(k, dim=1)
    return scores, candidates.gather(1, order)


def serialize(index) -> torch.Tensor:
    """The faiss index as a uint8 tensor (saved in a weights-only torch
    file)."""
    return torch.from_numpy(_faiss().serialize_index(index))


def deserialize(data: torch.Tensor):
    return _faiss().deserialize_index(data.numpy())


def settings_dict(settings: IVFPQSettings) -> dict:
    return asdict(settings)
