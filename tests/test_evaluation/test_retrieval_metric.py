import json
import os
import tempfile

import pytest
import torch
from common import spawn_workers

from gadms.evaluation import (NonFiniteScoresError,
                              TextPersonRetrievalMetric,
                              compute_retrieval_metrics)
from gadms.registry import METRICS


def brute_force_metrics(similarity, query_pids, gallery_pids,
                        topk=(1, 5, 10)):
    """The protocol written out query by query with plain Python."""
    sums = {f'R{k}': 0.0 for k in topk}
    sums.update(mAP=0.0, mINP=0.0)
    counted = 0
    for q, row in enumerate(similarity.tolist()):
        # descending similarity; ties keep gallery order
        order = sorted(range(len(row)), key=lambda g: (-row[g], g))
        relevant = [gallery_pids[g] == query_pids[q] for g in order]
        if not any(relevant):
            continue
        counted += 1
        ranks = [i + 1 for i, hit in enumerate(relevant) if hit]
        for k in topk:
            sums[f'R{k}'] += 1.0 if ranks[0] <= k else 0.0
        sums['mAP'] += sum((n + 1) / rank
                           for n, rank in enumerate(ranks)) / len(ranks)
        sums['mINP'] += len(ranks) / ranks[-1]
    return {key: 100.0 * value / counted for key, value in sums.items()}


def test_hand_worked_example():
    similarity = torch.tensor([[0.9, 0.8, 0.1, 0.5],
                               [0.7, 0.2, 0.6, 0.4],
                               [0.3, 0.3, 0.3, 0.3]])
    query_pids = torch.tensor([1, 2, 9])  # pid 9 is not in the gallery
    gallery_pids = torch.tensor([1, 2, 1, 3])
    metrics = compute_retrieval_metrics(similarity, query_pids, gallery_pids)
    # query 0: relevant at ranks 1 and 4 -> AP (1/1 + 2/4) / 2, INP 2/4
    # query 1: relevant at rank 4 -> AP 1/4, INP 1/4; query 2 left out
    assert metrics == pytest.approx(
        dict(R1=50.0, R5=100.0, R10=100.0, mAP=50.0, mINP=37.5))


def test_ties_keep_gallery_order():
    metrics = compute_retrieval_metrics(
        torch.tensor([[0.5, 0.5]]), torch.tensor([1]), torch.tensor([2, 1]),
        topk=(1, ))
    assert metrics == pytest.approx(dict(R1=0.0, mAP=50.0, mINP=50.0))


@pytest.mark.parametrize('num_queries, num_gallery, num_ids', [
    (1, 1, 1), (7, 13, 4), (50, 30, 12), (200, 120, 40), (64, 300, 150)
])
def test_matches_brute_force_on_random_inputs(num_queries, num_gallery,
                                              num_ids):
    generator = torch.Generator().manual_seed(num_queries * 1000 +
                                              num_gallery)
    # quantised similarities produce ties as well
    similarity = torch.randint(0, 20, (num_queries, num_gallery),
                               generator=generator).float() / 20
    gallery_pids = torch.randint(0, num_ids, (num_gallery, ),
                                 generator=generator)
    # some query identities are absent from the gallery
    query_pids = torch.randint(0, num_ids + 3, (num_queries, ),
                               generator=generator)
    if not (query_pids[:, None] == gallery_pids[None]).any():
        query_pids[0] = gallery_pids[0]
    expected = brute_force_metrics(similarity, query_pids.tolist(),
                                   gallery_pids.tolist())
    metrics = compute_retrieval_metrics(similarity, query_pids, gallery_pids)
    assert metrics == pytest.approx(expected, abs=1e-6)


def test_no_query_with_a_relevant_image_is_an_error():
    with pytest.raises(ValueError, match='no query'):
        compute_retrieval_metrics(
            torch.rand(2, 3), torch.tensor([5, 6]), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match='shape'):
        compute_retrieval_metrics(
            torch.rand(2, 3), torch.tensor([1]), torch.tensor([1, 2, 3]))


def _predictions(num_images, captions_per_image, dim, num_ids, seed):
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(num_images):
        samples.append(
            dict(
                image_feat=torch.nn.functional.normalize(
                    torch.randn(dim, generator=generator), dim=0),
                text_feats=torch.nn.functional.normalize(
                    torch.randn(captions_per_image[i % 3], dim,
                                generator=generator), dim=1),
                pid=i % num_ids))
    return samples


@pytest.mark.parametrize('pairs_per_chunk', [1, 37, 1 << 24])
def test_metric_ranks_every_caption_against_every_image(pairs_per_chunk):
    samples = _predictions(30, (1, 2, 3), 8, 11, seed=3)
    metric = METRICS.build(
        dict(type='TextPersonRetrievalMetric',
             pairs_per_chunk=pairs_per_chunk))
    metric.process({}, samples[:17])
    metric.process({}, samples[17:])
    metrics = metric.evaluate(size=30)
    gallery = torch.stack([s['image_feat'] for s in samples])
    queries = torch.cat([s['text_feats'] for s in samples])
    query_pids = [s['pid'] for s in samples
                  for _ in range(len(s['text_feats']))]
    expected = brute_force_metrics(queries @ gallery.t(), query_pids,
                                   [s['pid'] for s in samples])
    assert len(query_pids) == 60
    assert metrics == pytest.approx(
        {f't2i/{key}': value
         for key, value in expected.items()}, abs=1e-4)


def test_metric_arguments():
    assert isinstance(
        METRICS.build(dict(type='TextPersonRetrievalMetric', prefix='cuhk')),
        TextPersonRetrievalMetric)
    with pytest.raises(ValueError, match='topk'):
        TextPersonRetrievalMetric(topk=(0, 5))


def _distributed_eval_worker(rank, world_size, tmp_dir, samples):
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler
    dist.init_process_group(
        'gloo', init_method=f'file://{os.path.join(tmp_dir, "init")}',
        rank=rank, world_size=world_size)
    # the sampler pads the last round with repeated samples
    sampler = DefaultSampler(list(range(len(samples))), shuffle=False)
    metric = TextPersonRetrievalMetric()
    metric.process({}, [samples[i] for i in sampler])
    metrics = metric.evaluate(size=len(samples))
    torch.save(metrics, os.path.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_process_evaluation_equals_one_process():
    samples = _predictions(31, (1, 2, 3), 8, 9, seed=5)  # 31: not even
    single = TextPersonRetrievalMetric()
    single.process({}, samples)
    expected = single.evaluate(size=31)
    with tempfile.TemporaryDirectory() as tmp:
        spawn_workers(_distributed_eval_worker, 2, (2, tmp, samples))
        for rank in range(2):
            metrics = torch.load(os.path.join(tmp, f'rank{rank}.pt'))
            assert metrics == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize('pairs_per_chunk', [7, 1 << 24])
def test_rankings_file_matches_the_metrics(pairs_per_chunk, tmp_path):
    samples = _predictions(30, (1, 2, 3), 8, 11, seed=4)
    for i, sample in enumerate(samples):
        sample.update(img_path=f'g{i}.png', captions=[
            f'caption {i}.{c}' for c in range(len(sample['text_feats']))],
            benchmark='CUHK-PEDES', split='test')
    # two gallery images tied with image 0 for every query
    samples[5]['image_feat'] = samples[0]['image_feat'].clone()
    samples[9]['image_feat'] = samples[0]['image_feat'].clone()
    path = str(tmp_path / 'rankings.jsonl')
    metric = METRICS.build(dict(
        type='TextPersonRetrievalMetric', rankings_file=path,
        rankings_topk=5, pairs_per_chunk=pairs_per_chunk))
    metric.process({}, samples)
    metrics = metric.evaluate(size=30)
    lines = [json.loads(line) for line in open(path)]
    gallery = torch.stack([s['image_feat'] for s in samples])
    queries = torch.cat([s['text_feats'] for s in samples])
    similarity = (queries @ gallery.t()).tolist()
    owners = [(i, c) for i, s in enumerate(samples)
              for c in range(len(s['text_feats']))]
    assert [line['query'] for line in lines] == list(range(len(owners)))
    for line, (owner, c), row in zip(lines, owners, similarity):
        assert line['dataset'] == 'CUHK-PEDES/test'
        assert line['caption'] == f'caption {owner}.{c}'
        assert line['pid'] == samples[owner]['pid']
        # descending similarity, ties in gallery order
        expected = sorted(range(30), key=lambda g: (-row[g], g))[:5]
        assert [hit['index'] for hit in line['ranking']] == expected
        for hit in line['ranking']:
            assert hit['path'] == f'g{hit["index"]}.png'
            assert hit['pid'] == samples[hit['index']]['pid']
            assert hit['score'] == pytest.approx(row[hit['index']])
    # R1 and R5 read off the rankings equal the metric's
    for k in (1, 5):
        hit_rate = sum(any(h['pid'] == line['pid']
                           for h in line['ranking'][:k])
                       for line in lines) / len(lines)
        assert 100 * hit_rate == pytest.approx(
            metrics[f't2i/R{k}'], abs=1e-9)
    assert not os.path.exists(path + '.part')


def full_sort_statistics(similarity, query_pids, gallery_pids, topk):
    """The protocol by a stable descending sort of every row (what gadms
    computed before it counted the ranks of the relevant images only)."""
    order = torch.sort(similarity, dim=1, descending=True, stable=True)[1]
    matches = gallery_pids[order] == query_pids[:, None]
    num_relevant = matches.sum(dim=1)
    valid = num_relevant > 0
    ranks = torch.arange(1, matches.shape[1] + 1, dtype=torch.float64)
    first = torch.where(valid, matches.int().argmax(dim=1) + 1,
                        matches.shape[1] + 1)
    hits = first[:, None] <= torch.as_tensor(topk)
    ap = (matches.cumsum(dim=1) / ranks * matches).sum(dim=1) / \
        num_relevant.clamp(min=1)
    last = matches.shape[1] - matches.flip(dims=[1]).int().argmax(dim=1)
    inp = torch.where(valid, num_relevant.double() / last,
                      torch.zeros_like(ap))
    return hits, ap, inp, valid


ROUNDINGS = {
    'none': lambda s: s,
    'fp16': lambda s: s.half().float(),  # an fp16 gallery
    'bf16': lambda s: s.bfloat16().float(),  # bf16 autocast
    '0.1': lambda s: (s * 10).round() / 10,
    '3 levels': lambda s: (s * 3).floor() / 3,
    '2 levels': lambda s: (s * 2).floor() / 2,
}


@pytest.mark.parametrize('rounding', list(ROUNDINGS))
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_rank_counting_equals_the_full_sort(rounding, seed):
    """Identical per-query statistics, ties included: the roundings tie
    more and more of a row (2 levels: only two values)."""
    from gadms.evaluation.metrics.retrieval import _rank_statistics
    generator = torch.Generator().manual_seed(seed)
    similarity = ROUNDINGS[rounding](
        torch.rand(60, 45, generator=generator) * 0.6 + 0.1)
    gallery_pids = torch.randint(0, 12, (45, ), generator=generator)
    # some query identities are absent from the gallery
    query_pids = torch.randint(0, 15, (60, ), generator=generator)
    topk = (1, 5, 10, 50)
    ours = _rank_statistics(similarity, query_pids, gallery_pids, topk)
    reference = full_sort_statistics(similarity, query_pids, gallery_pids,
                                     topk)
    valid = reference[3]
    assert torch.equal(ours[3], valid) and valid.any() and not valid.all()
    assert torch.equal(ours[0][valid], reference[0][valid])
    torch.testing.assert_close(ours[1], reference[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(ours[2], reference[2], rtol=0, atol=1e-12)


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_similarities_are_refused(bad):
    """A NaN matrix used to score R1 100 (every comparison with NaN is
    false); each kind of non-finite value is refused, counted, and its
    queries named with their index in the whole query set, across blocks."""
    gallery_pids = torch.arange(6) % 3
    similarity = torch.rand(9, 6, generator=torch.Generator().manual_seed(0))
    similarity[2, 4] = bad
    similarity[7, :2] = bad
    with pytest.raises(NonFiniteScoresError,
                       match=r'^3 similarities are NaN or infinite, in 2 '
                       r'queries \(query indices 2, 7\)'):
        compute_retrieval_metrics(similarity, gallery_pids[:3].repeat(3),
                                  gallery_pids)
    nan_everywhere = torch.full((9, 6), bad)
    with pytest.raises(NonFiniteScoresError,
                       match=r'^54 similarities .* in 9 queries \(query '
                       r'indices 0, 1, 2, 3, 4, 5, 6, 7, 8\)'):
        compute_retrieval_metrics(nan_everywhere, gallery_pids[:3].repeat(3),
                                  gallery_pids)


def test_opposite_infinities_and_huge_finite_values():
    gallery_pids = torch.tensor([0, 1, 2])
    opposite = torch.tensor([[float('inf'), 0.0, -float('inf')],
                             [0.1, 0.2, 0.3]])
    with pytest.raises(NonFiniteScoresError, match=r'^2 similarities .* in '
                       r'1 queries \(query indices 0\)'):
        compute_retrieval_metrics(opposite, torch.tensor([0, 1]),
                                  gallery_pids)
    # a row sum that overflows its dtype is not a non-finite value
    for dtype, large in ((torch.float64, 1e308), (torch.float16, 6e4)):
        huge = torch.tensor([[large, large, 1.0], [1.0, 2.0, 3.0]],
                            dtype=dtype)
        metrics = compute_retrieval_metrics(huge, torch.tensor([2, 2]),
                                            gallery_pids, topk=(1, ))
        assert metrics == pytest.approx(dict(R1=50.0, mAP=(1 / 3 + 1) * 50,
                                             mINP=(1 / 3 + 1) * 50))


def _poison_query_8(samples):
    # images have 1, 2, 3, 1, 2, ... captions: image 4's second is query 8
    samples[4]['text_feats'][1] = float('nan')


def _poison_image_0(samples):
    samples[0]['image_feat'][0] = float('nan')  # in every query's row


@pytest.mark.parametrize('pairs_per_chunk', [5, 1 << 24])
@pytest.mark.parametrize('poison, message', [
    (_poison_query_8, r'^12 similarities .* in 1 queries \(query indices '
     r'8\)'),
    (_poison_image_0, r'^24 similarities .* in 24 queries \(query indices '
     r'0, 1, 2, .* and 14 more\)'),
])
def test_metric_refuses_nan_features(pairs_per_chunk, poison, message):
    """Every query and value counted, across blocks of 1 query (5 pairs)
    or all queries at once."""
    samples = _predictions(12, (1, 2, 3), 8, 5, seed=4)
    poison(samples)
    metric = TextPersonRetrievalMetric(pairs_per_chunk=pairs_per_chunk)
    metric.process({}, samples)
    with pytest.raises(NonFiniteScoresError, match=message):
        metric.evaluate(size=12)
