"""The export stage on hand-made filter and caption outputs: the
hash-partitioned caption deduplication against a brute-force reference,
memory bounded by one shard, a failed export keeping the last corpus."""
import os
import os.path as osp
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_scenes import exported_rows

from gadms.corpus import run_export_stage
from gadms.corpus.caption_stage import CAPTION_SCHEMA
from gadms.corpus.export_stage import caption_problem, normalised
from gadms.corpus.filter_stage import CROP_SCHEMA
from gadms.datasets import WebPerson
from gadms.testing.peak_memory import (peak_mib, ray_worker_pids, reset_peak,
                                       resident_mib)

pytestmark = pytest.mark.usefixtures('ray_local')
MIB = 1 << 20


def write_stages(out: str, shards: dict) -> None:
    """``shards``: shard -> list of (crop id, image bytes, caption1,
    caption2); a caption ``None`` is a failed request. Writes what the
    filter and caption stages would."""
    for shard, crops in shards.items():
        folder = osp.join(out, 'crops', shard)
        os.makedirs(folder)
        pq.write_table(pa.Table.from_pylist([
            dict(shard=shard, source=crop_id, detection=0, status='kept',
                 box=[0, 0, 1, 2], score=1.0, id=crop_id, image=image)
            for crop_id, image, _, _ in crops], schema=CROP_SCHEMA),
            osp.join(folder, 'part.parquet'))
        folder = osp.join(out, 'captions', shard, 'attempt-000')
        os.makedirs(folder)
        pq.write_table(pa.Table.from_pylist([
            dict(shard=shard, id=crop_id, which=which, template='t',
                 caption=text, error=None if text is not None else 'E: x')
            for crop_id, _, *texts in crops
            for which, text in zip((1, 2), texts)], schema=CAPTION_SCHEMA),
            osp.join(folder, 'part.parquet'))


def reference_export(shards: dict, min_words: int = 8):
    """The rule written out plainly: the kept crop ids in corpus order and
    the dropped captions per reason."""
    crops = sorted((c for crops in shards.values() for c in crops),
                   key=lambda c: c[0])
    dropped, clean = {}, []
    for crop_id, _, first, second in crops:
        if first is None or second is None:
            dropped['not captioned'] = dropped.get('not captioned', 0) + 1
            continue
        problems = [caption_problem(first, min_words),
                    caption_problem(second, min_words)]
        if problems[1] is None and normalised(first) == normalised(second):
            problems[1] = 'duplicate'
        for problem in problems:
            if problem:
                dropped[problem] = dropped.get(problem, 0) + 1
        if not any(problems):
            clean.append((crop_id, normalised(first), normalised(second)))
    owner = {}
    for crop_id, *keys in clean:  # ids ascending: the first owner wins
        for key in keys:
            owner.setdefault(key, crop_id)
    kept = []
    for crop_id, *keys in clean:
        losers = sum(owner[key] != crop_id for key in keys)
        if losers:
            dropped['duplicate'] = dropped.get('duplicate', 0) + losers
        else:
            kept.append(crop_id)
    return kept, dropped


def test_deduplication_matches_a_brute_force_reference(tmp_path):
    rng = np.random.default_rng(0)
    pool = [f'A person {i} in a coat walks past the red door today.'
            for i in range(200)]
    pool += ['', "I'm sorry, I cannot help.", 'A man in a',
             'a PERSON 3 in a coat, walks past the red door today!']
    shards = {}
    for s in range(5):
        crops = []
        for k in range(30):
            first, second = (pool[i] for i in rng.integers(len(pool), size=2))
            if rng.random() < 0.05:
                first = None
            crops.append((f'{s:05d}/c{int(rng.integers(1000)):03d}_{k}',
                          bytes(rng.integers(0, 256, 8, np.uint8)), first,
                          second))
        shards[f'{s:05d}'] = crops
    out = str(tmp_path / 'corpus')
    write_stages(out, shards)
    kept, dropped = reference_export(shards)
    report = run_export_stage(out, num_buckets=4)
    assert report['dropped_captions'] == dropped
    assert report['kept'] == len(kept) and 20 < len(kept) < 120
    rows = exported_rows(out)
    assert [r['image_path'] for r in rows] == kept
    by_id = {c[0]: c for crops in shards.values() for c in crops}
    assert all(r['image']['bytes'] == by_id[r['image_path']][1] and
               r['caption1'] == by_id[r['image_path']][2].strip()
               for r in rows)
    # one bucket or many: the same corpus
    run_export_stage(out, num_buckets=1)
    assert exported_rows(out) == rows


def distinct_clean_shards(num_shards: int, per_shard: int) -> dict:
    """``write_stages`` input: shards ``00000``... of ``per_shard`` crops
    whose two captions pass every check and are all different, so that
    every crop is kept."""
    caption = 'walks past the door in a long grey coat and black shoes.'
    return {f'{s:05d}': [(f'{s:05d}/c{k}', b'img', f'{s} {k} a ' + caption,
                          f'{s} {k} the ' + caption)
                         for k in range(per_shard)]
            for s in range(num_shards)}


def test_a_failed_export_keeps_the_previous_corpus(tmp_path):
    shards = distinct_clean_shards(3, 3)
    out = str(tmp_path / 'corpus')
    write_stages(out, shards)
    assert run_export_stage(out)['shards'] == 3
    before = exported_rows(out)
    crops = osp.join(out, 'crops', '00001', 'part.parquet')
    good = open(crops, 'rb').read()
    with open(crops, 'wb') as f:
        f.write(b'PAR1 torn by a crash PAR1')
    with pytest.raises(Exception, match='part.parquet|Parquet|parquet'):
        run_export_stage(out)
    assert exported_rows(out) == before
    assert len(WebPerson(data_root=out, ann_file='data')) == 2 * 9
    with open(crops, 'wb') as f:
        f.write(good)
    assert run_export_stage(out)['kept'] == 9


def test_export_memory_is_one_shard_not_the_corpus(tmp_path):
    """32 shards of 16 MiB of image bytes (512 MiB): no worker process
    grows by more than 12 shards' worth (the slack covers the workers'
    own imports and Arrow's pools, which vary with what ran before), and
    the driver by less than one shard."""
    shard_bytes, num_shards, per_shard = 16 * MIB, 32, 16
    rng = np.random.default_rng(1)
    shards = {}
    for s in range(num_shards):
        crops = []
        for k in range(per_shard):
            image = rng.bytes(shard_bytes // per_shard)  # incompressible
            crops.append((f'{s:05d}/c{k:02d}', image,
                          f'Person {k} of shard {s} wears a long grey coat.',
                          f'Shard {s} person {k} carries a small black bag.'))
        shards[f'{s:05d}'] = crops
    out = str(tmp_path / 'corpus')
    write_stages(out, shards)
    # the cost of an export task without data: the peak of the workers
    # after exporting two tiny crops (imports, Arrow's pools)
    warm = str(tmp_path / 'warm')
    write_stages(warm, {'00000': shards['00000'][:2]})
    reset_peak(ray_worker_pids())  # earlier tests' peaks do not count
    run_export_stage(warm)
    workers = ray_worker_pids()
    baseline = max(peak_mib(workers).values())
    reset_peak(workers + [os.getpid()])
    driver = resident_mib([os.getpid()])[os.getpid()]
    start = time.monotonic()
    report = run_export_stage(out)
    assert report['kept'] == num_shards * per_shard
    assert time.monotonic() - start < 600
    peaks = peak_mib(ray_worker_pids())
    assert peaks, 'no Ray worker found'
    corpus_mib = num_shards * shard_bytes / MIB
    worst = max(peaks.values()) - baseline
    assert worst < 12 * shard_bytes / MIB < corpus_mib / 2, (worst, peaks)
    driver_growth = peak_mib([os.getpid()])[os.getpid()] - driver
    assert driver_growth < shard_bytes / MIB, driver_growth


def test_driver_memory_does_not_grow_with_the_shards(tmp_path):
    """The driver's peak over an export of 500 small shards stays within
    a few MiB of what it held: only the shards' counts come back to it, as
    plain counters added up as they arrive (the Ray Data shuffle this
    replaced held 24 MiB more at 300 such shards: every shard's small
    blocks and their bookkeeping; a one-row Arrow table of counts per
    shard, 10 MiB more at 500, docs/benchmarks.md)."""
    shards = distinct_clean_shards(500, 20)
    out = str(tmp_path / 'corpus')
    write_stages(out, shards)
    warm = str(tmp_path / 'warm')
    write_stages(warm, {'00000': shards['00000']})
    run_export_stage(warm)  # the first export's imports and pools
    reset_peak([os.getpid()])
    before = resident_mib([os.getpid()])[os.getpid()]
    assert run_export_stage(out, num_buckets=4)['kept'] == 500 * 20
    growth = peak_mib([os.getpid()])[os.getpid()] - before
    assert growth < 6, growth
