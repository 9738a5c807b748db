import pytest
import torch

from gadms.apis import chunked_topk, faiss_topk
from gadms.apis.search import BLOCK_ROWS, default_chunk_rows


@pytest.fixture(params=['onednn', 'torch.mm'])
def matrix_product(request, monkeypatch):
    """Runs a test with each of the CPU matrix-product kernels."""
    monkeypatch.setattr(torch.backends.mkldnn, 'enabled',
                        request.param == 'onednn')


def _reference(queries, gallery, k):
    similarity = queries.float() @ gallery.float().t()
    order = similarity.argsort(dim=1, descending=True, stable=True)[:, :k]
    return similarity.gather(1, order), order


@pytest.mark.parametrize('chunk_size', [1, 7, 64, 1000])
@pytest.mark.parametrize('k', [1, 5, 50])
def test_chunked_topk_equals_a_stable_full_sort_with_ties(chunk_size, k,
                                                         matrix_product):
    generator = torch.Generator().manual_seed(k + chunk_size)
    # few distinct values: many exact ties, also across chunk borders
    gallery = torch.randint(0, 3, (300, 4), generator=generator).float()
    queries = torch.randint(0, 3, (20, 4), generator=generator).float()
    scores, indices = chunked_topk(queries, gallery, k, chunk_size)
    expected_scores, expected_indices = _reference(queries, gallery, k)
    assert torch.equal(indices, expected_indices)
    assert torch.equal(scores, expected_scores)


@pytest.mark.parametrize('chunk_size', [None, 300])
@pytest.mark.parametrize('k', [1, 5, 10])
@pytest.mark.parametrize('step', [1 / 8, 1 / 64, 0.0])
def test_block_preselection_equals_a_stable_full_sort(chunk_size, k, step,
                                                      matrix_product):
    """Chunks of more than k blocks take their top k from the k best
    blocks. Features rounded to ``step`` give ties of every kind: at the
    k-th value inside the chosen blocks, between block maxima, and none
    (0.0: continuous). 1,007 rows: the last block of a chunk is short,
    and its last row is query 0's best match."""
    generator = torch.Generator().manual_seed(k)
    gallery = torch.randn(1007, 6, generator=generator)
    queries = torch.randn(30, 6, generator=generator)
    gallery[-1] = queries[0] * 4
    if step:
        gallery = (gallery / step).round() * step
        queries = (queries / step).round() * step
    assert 1007 % BLOCK_ROWS and 1007 > k * BLOCK_ROWS
    scores, indices = chunked_topk(queries, gallery, k, chunk_size)
    expected_scores, expected_indices = _reference(queries, gallery, k)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(scores, expected_scores)


@pytest.mark.parametrize('queries, gallery, rows', [
    (256, 10_000, 10_000),    # at most two chunks: one step
    (256, 100_000, 8192),     # 2**21 / 256 similarities per chunk
    (6156, 1_000_000, 1024),  # many queries: the fewest rows
    (1, 10**7, 8192),         # one query: the most rows
])
def test_default_chunk_rows(queries, gallery, rows):
    assert default_chunk_rows(queries, gallery) == rows


def test_fp16_gallery_and_random_features(matrix_product):
    generator = torch.Generator().manual_seed(0)
    gallery = torch.nn.functional.normalize(
        torch.randn(5000, 64, generator=generator), dim=1).half()
    queries = torch.randn(8, 64, generator=generator)
    scores, indices = chunked_topk(queries, gallery, 10, chunk_size=512)
    expected_scores, expected_indices = _reference(queries, gallery, 10)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(scores, expected_scores)
    assert gallery.dtype == torch.float16


@pytest.mark.parametrize('order', ['random', 'ascending', 'descending'])
def test_chunks_that_change_some_queries_or_all_or_none(order,
                                                       matrix_product):
    """Later chunks are searched only for the queries whose k-th kept
    score they beat: in random order a few queries per chunk, in ascending
    score order all of them, in descending order none."""
    generator = torch.Generator().manual_seed(2)
    gallery = torch.nn.functional.normalize(
        torch.randn(3000, 16, generator=generator), dim=1)
    queries = torch.nn.functional.normalize(
        torch.randn(6, 16, generator=generator) * 0.2 + 1, dim=1)
    if order != 'random':
        projection = gallery @ queries.mean(dim=0)
        gallery = gallery[projection.argsort(
            descending=order == 'descending')]
    scores, indices = chunked_topk(queries, gallery, 8, chunk_size=100)
    expected_scores, expected_indices = _reference(queries, gallery, 8)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(scores, expected_scores)


def test_cpu_search_runs_the_packed_onednn_kernels(monkeypatch):
    """The packed oneDNN linear kernels are what makes exact search keep
    up with faiss on CPU (docs/benchmarks.md): on this stack they must be
    the ones used, and ``torch.mm`` only when oneDNN is switched off."""
    def refuse(*args, **kwargs):
        raise AssertionError('torch.mm was used')

    monkeypatch.setattr(torch, 'mm', refuse)
    queries, gallery = torch.randn(3, 8), torch.randn(50, 8)
    chunked_topk(queries, gallery, 2, chunk_size=16)
    monkeypatch.setattr(torch.backends.mkldnn, 'enabled', False)
    with pytest.raises(AssertionError, match='torch.mm was used'):
        chunked_topk(queries, gallery, 2, chunk_size=16)


def test_bad_k():
    with pytest.raises(ValueError, match=r'k must be in \[1, 3\], got 4'):
        chunked_topk(torch.zeros(1, 2), torch.zeros(3, 2), 4)


def test_faiss_backend_agrees_without_ties():
    generator = torch.Generator().manual_seed(1)
    gallery = torch.nn.functional.normalize(
        torch.randn(2000, 32, generator=generator), dim=1)
    queries = torch.randn(5, 32, generator=generator)
    scores, indices = faiss_topk(queries, gallery, 7)
    expected_scores, expected_indices = chunked_topk(queries, gallery, 7)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(scores, expected_scores)
