"""Approximate gallery indexes: IVF-PQ candidates re-ranked exactly, saved
and loaded with their kind, grown, and searched through the same API."""
import pytest
import torch

from gadms.apis import GalleryIndex
from gadms.apis.approximate import IVFPQSettings
from gadms.apis.search import chunked_topk

DIM = 64
SETTINGS = IVFPQSettings(probe=16, rerank=100, train_rows=20_000)


def clustered(rows: int, people: int, seed: int = 0) -> tuple:
    """Features of ``people`` people (a few images each, near their
    centre), and queries near the centres of some of them."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(
        torch.randn(people, DIM, generator=generator), dim=-1)
    owner = torch.randint(people, (rows, ), generator=generator)
    features = torch.nn.functional.normalize(
        centres[owner] + 0.6 * torch.randn(rows, DIM, generator=generator)
        / DIM ** 0.5, dim=-1)
    queries = torch.nn.functional.normalize(
        centres[:50] + 0.6 * torch.randn(50, DIM, generator=generator)
        / DIM ** 0.5, dim=-1)
    return features.half(), queries


@pytest.fixture(scope='module')
def approximate() -> tuple:
    features, queries = clustered(20_000, 2_000)
    index = GalleryIndex(features, [f'{i}.png' for i in range(20_000)],
                         None, 'model')
    index.approximate(SETTINGS, progress=False)
    return index, queries


def _recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    return sum(len(set(a.tolist()) & set(b.tolist()))
               for a, b in zip(found, exact)) / exact.numel()


def test_it_finds_what_exact_search_finds(approximate):
    index, queries = approximate
    assert index.kind == 'ivfpq'
    scores, rows = index.topk(queries, 10)
    exact_scores, exact_rows = chunked_topk(queries, index.features, 10)
    assert _recall(rows, exact_rows) >= 0.95
    # the candidates are re-ranked by their exact scores
    torch.testing.assert_close(
        scores, torch.einsum('qd,qkd->qk', queries,
                             index.features[rows].float()))
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    # an exact backend still scans the whole index
    assert torch.equal(index.topk(queries, 10, backend='torch')[1],
                       exact_rows)


def test_a_saved_approximate_index_loads_with_its_kind(approximate,
                                                       tmp_path):
    index, queries = approximate
    index.save(str(tmp_path / 'gallery.pth'))
    loaded = GalleryIndex.load(str(tmp_path / 'gallery.pth'), 'model')
    assert loaded.kind == 'ivfpq' and loaded.ann_settings == SETTINGS
    assert torch.equal(loaded.topk(queries, 10)[1], index.topk(queries,
                                                               10)[1])


def test_a_kind_without_its_index_is_refused(approximate, tmp_path):
    index, _ = approximate
    path = str(tmp_path / 'broken.pth')
    content = dict(features=index.features, paths=index.paths, pids=None,
                   fingerprint='model', root=None, kind='ivfpq')
    torch.save(content, path)
    with pytest.raises(ValueError, match="kind 'ivfpq' without an "
                       'approximate index'):
        GalleryIndex.load(path)


def test_rows_added_later_are_found(approximate):
    features, _ = clustered(2_000, 200, seed=1)
    index = GalleryIndex(features[:1_500], [f'{i}.png' for i in
                                            range(1_500)], None, 'model')
    index.approximate(IVFPQSettings(probe=8, rerank=50), progress=False)
    index.extend(features[1_500:], [f'{i}.png' for i in range(1_500, 2_000)])
    queries = features[1_900:1_950].float()
    _, rows = index.topk(queries, 1)
    assert rows[:, 0].tolist() == list(range(1_900, 1_950))
