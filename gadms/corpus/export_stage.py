"""Stage 3 on Ray: clean the captions, drop repeated ones, write the
WebPerson parquet shards.

A crop is dropped when one of its captions is missing (``not
captioned``), empty, a refusal, truncated (:func:`caption_problem`), the
same as its other caption, or the same (after :func:`normalised`) as a
caption of a crop with a smaller id: a caption that several clean crops
carry stays with the first of them only. Each reason is counted per
caption.

Deduplication is a groupby on the normalised caption, hash-partitioned
into ``num_buckets`` buckets, shuffled through files in
``export.part/`` by three rounds of Ray tasks (one CPU each):

1. a task per crop shard pairs each crop's two captions, checks them and
   writes one row per caption (``id``, ``key``, ``problem``, ``bucket``: a
   hash of ``key``) to ``checked/<shard>.parquet``, sorted by bucket in
   small row groups;
2. a task per bucket reads that bucket's rows from every shard's file
   (the row groups' statistics skip the others), marks all but the first
   crop of each key ``duplicate`` and writes the captions to drop, with
   their crop shard, to ``drops/bucket=K.parquet`` (sorted by shard);
3. a task per crop shard reads its drops the same way, joins its kept
   crops (the image bytes) with its captions, leaves out the dropped ones
   and writes ``data/<shard>.parquet`` (rows sorted by id); it returns
   only its counts.

Only step 3 touches image bytes, one shard at a time, and the driver holds
the counts of the shards and nothing else: its memory does not grow with
the corpus (a Ray Data shuffle kept every shard's checked captions and
the bookkeeping of thousands of blocks in the driver:
docs/benchmarks.md). The files are renamed ``train-XXXXX-of-YYYYY.parquet``
in shard order and the folder is swapped in as ``data/`` at the end: a
killed export leaves the previous shards (or none), never a mix, and the
corpus has the same rows in the same order whichever machines wrote it,
so that WebPerson's seeded subsets stay the same.
"""
import os
import os.path as osp
import re
import shutil
import time
from collections import Counter
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.common.atomic import replace_folder, write_json, write_parquet
from gadms.common.formats import CAPTION_FIELDS, WEBPERSON_SCHEMA
from .caption_stage import WORD_CONFIDENCES, caption_attempts
from .filter_stage import crop_shard_folder, finished_crop_shards
from .sharded import (parquet_files, run_all, sorted_with_first, stable_bucket,
                      task_runner)

REFUSALS = re.compile(
    r"\b(i'?m sorry|i am sorry|i can(no|')t|i cannot|unable to|as an ai|"
    r'cannot (help|assist|describe)|no person)\b', re.IGNORECASE)

CHECKED_SCHEMA = pa.schema([
    ('shard', pa.string()), ('id', pa.string()), ('key', pa.string()),
    ('problem', pa.string()),
    ('clean_crop', pa.bool_()),  # both captions passed their checks
    ('bucket', pa.int32()),
])
DROP_SCHEMA = pa.schema([('shard', pa.string()), ('id', pa.string()),
                         ('reason', pa.string())])
# rows per row group of the shuffle's files: small, so that a reader of
# one bucket (or shard) skips the groups of the others by their statistics
GROUP_ROWS = 64
# the counts of a shard's dropped captions, by reason: ``reason: <why>``
REASON = 'reason: '


def caption_problem(caption: Optional[str], min_words: int = 8
                    ) -> Optional[str]:
    """Why a caption is unusable (``'empty'``, ``'refusal'``,
    ``'truncated'``), or ``None``."""
    text = (caption or '').strip()
    if not text:
        return 'empty'
    if REFUSALS.search(text):
        return 'refusal'
    if len(text.split()) < min_words or text[-1] not in '.!?"\'':
        return 'truncated'
    return None


def normalised(caption: str) -> str:
    """Lower-case words joined by single spaces (punctuation dropped)."""
    return ' '.join(re.findall(r'\w+', caption.lower()))


def _answers(file: str, word_confidences: bool) -> pa.Table:
    """A caption attempt file's ``id, which, caption, error`` and, asked
    for, ``word_confidences`` (null in files written without it)."""
    columns = ['id', 'which', 'caption', 'error']
    if not word_confidences:
        return pq.read_table(file, columns=columns, partitioning=None)
    names = pq.read_schema(file).names
    table = pq.read_table(file, columns=columns + [
        c for c in ('word_confidences', ) if c in names], partitioning=None)
    if 'word_confidences' not in names:
        table = table.append_column('word_confidences', pa.nulls(
            len(table), WORD_CONFIDENCES))
    return table


def shard_captions(out_dir: str, shard: str,
                   word_confidences: bool = False) -> pa.Table:
    """``id``, ``caption1``, ``caption2`` (and with ``word_confidences``,
    ``caption1_word_confidences`` and ``caption2_word_confidences``) of the
    crops of ``shard`` that have both captions (the answered rows of all
    attempts)."""
    files = [f for a in caption_attempts(out_dir, shard)
             for f in parquet_files(a, depth=0)]
    extra = ['word_confidences'] if word_confidences else []
    if not files:
        return pa.table({
            name: pa.array([], kind) for name, kind in [
                ('id', pa.string())] + [
                    (field, pa.string()) for field in CAPTION_FIELDS] + [
                    (f'{field}_word_confidences', WORD_CONFIDENCES)
                    for field in CAPTION_FIELDS if word_confidences]})
    table = pa.concat_tables(_answers(f, word_confidences) for f in files)
    table = table.filter(pc.is_null(table['error']))
    first, second = (
        table.filter(pc.equal(table['which'], which))
        .select(['id', 'caption'] + extra).rename_columns(
            ['id', field] + [f'{field}_{c}' for c in extra])
        for which, field in enumerate(CAPTION_FIELDS, start=1))
    return _join_on_id(first, second)


def _join_on_id(left: pa.Table, right: pa.Table) -> pa.Table:
    """The inner join of two tables on their unique ``id`` column, sorted
    by id (Arrow's ``join`` does not carry list columns along)."""
    position = pc.index_in(left['id'], value_set=right['id'])
    both = pc.is_valid(position)
    left, right = left.filter(both), right.take(position.filter(both))
    for name in right.column_names:
        if name != 'id':
            left = left.append_column(name, right[name])
    return left.sort_by('id')


def checked_rows(out_dir: str, shard: str, min_words: int,
                 num_buckets: int) -> pa.Table:
    """A ``CHECKED_SCHEMA`` row per caption of each captioned crop of
    ``shard``."""
    captions = shard_captions(out_dir, shard)
    rows = {name: [] for name in CHECKED_SCHEMA.names[:-1]}
    first_field, second_field = CAPTION_FIELDS
    for crop_id, first, second in zip(captions['id'].to_pylist(),
                                      captions[first_field].to_pylist(),
                                      captions[second_field].to_pylist()):
        problems = [caption_problem(first, min_words),
                    caption_problem(second, min_words)]
        keys = [normalised(first or ''), normalised(second or '')]
        if problems[1] is None and keys[1] == keys[0]:
            problems[1] = 'duplicate'
        for key, problem in zip(keys, problems):
            for name, value in zip(rows, (shard, crop_id, key, problem,
                                          not any(problems))):
                rows[name].append(value)
    rows['bucket'] = stable_bucket(rows['key'], num_buckets)
    return pa.Table.from_pydict(rows, schema=CHECKED_SCHEMA)


def check_shard(shard: str, out_dir: str, min_words: int, num_buckets: int,
                checked: str) -> None:
    """Step 1 for ``shard``: its :func:`checked_rows` sorted by bucket, to
    ``checked/<shard>.parquet``. Runs as a Ray task."""
    write_parquet(checked_rows(out_dir, shard, min_words,
                               num_buckets).sort_by('bucket'),
                  osp.join(checked, f'{shard}.parquet'),
                  row_group_size=GROUP_ROWS)


def _rows_where(folder: str, schema: pa.Schema, column: str,
                value) -> pa.Table:
    """The rows of the parquet files of ``folder`` whose ``column`` is
    ``value`` (files sorted by it: their row groups' statistics let the
    reader skip the rest)."""
    import pyarrow.dataset as ds
    files = parquet_files(folder, depth=0)
    if not files:
        return schema.empty_table()
    return ds.dataset(files, schema=schema, format='parquet').to_table(
        filter=pc.field(column) == value)


def find_bucket_drops(bucket: int, checked: str, drops: str) -> None:
    """Step 2 for ``bucket``: :func:`bucket_drops` of its rows in every
    shard's checked file, sorted by shard, to ``drops/bucket=K.parquet``.
    Runs as a Ray task."""
    write_parquet(bucket_drops(_rows_where(
        checked, CHECKED_SCHEMA, 'bucket', bucket)).sort_by('shard'),
        osp.join(drops, f'bucket={bucket}.parquet'),
        row_group_size=GROUP_ROWS)


def export_shard(shard: str, out_dir: str, drops: str, folder: str,
                 word_confidences: bool) -> Counter:
    """Step 3 for ``shard``: :func:`write_shard` with its drops from every
    bucket's file; returns its counts. Runs as a Ray task."""
    return write_shard(_rows_where(drops, DROP_SCHEMA, 'shard', shard),
                       shard, out_dir, folder, word_confidences)


def bucket_drops(bucket: pa.Table) -> pa.Table:
    """Step 2 for one bucket (every ``CHECKED_SCHEMA`` row of its keys):
    the captions to drop (``DROP_SCHEMA``): those with a problem, and those
    of clean crops whose key a clean crop with a smaller id carries too."""
    flagged = bucket.filter(pc.is_valid(bucket['problem']))
    clean, first = sorted_with_first(
        bucket.filter(bucket['clean_crop']), 'key', 'id')
    repeated = clean.filter(pa.array(~first))
    return pa.table(dict(
        shard=pa.concat_arrays([flagged['shard'].combine_chunks(),
                                repeated['shard'].combine_chunks()]),
        id=pa.concat_arrays([flagged['id'].combine_chunks(),
                             repeated['id'].combine_chunks()]),
        reason=pa.concat_arrays([
            flagged['problem'].combine_chunks(),
            pa.array(['duplicate'] * len(repeated), pa.string())])),
        schema=DROP_SCHEMA)


def write_shard(drops: pa.Table, shard: str, out_dir: str, folder: str,
                word_confidences: bool = False) -> Counter:
    """Write the kept crops of ``shard`` (its ``DROP_SCHEMA`` rows:
    ``drops``) with their captions (and their word confidences, asked for)
    to ``folder/<shard>.parquet``; returns its counts: ``crops``,
    ``kept``, ``not captioned`` and each reason of its dropped captions
    (``reason: <reason>``). A plain Counter: the driver adds up one per
    shard, and a small Arrow table each held 20 KiB there."""
    captioned = shard_captions(out_dir, shard, word_confidences)
    captions = captioned.filter(pc.invert(pc.is_in(
        captioned['id'], drops['id'].drop_null().combine_chunks())))
    crops = pa.concat_tables(
        pq.read_table(f, columns=['status', 'id', 'image'],
                      partitioning=None)
        for f in parquet_files(crop_shard_folder(out_dir, shard), depth=0))
    crops = crops.filter(pc.equal(crops['status'], 'kept'))
    kept = _join_on_id(crops.select(['id', 'image']), captions)
    schema = WEBPERSON_SCHEMA
    columns = dict(
        image=pa.StructArray.from_arrays(
            [kept['image'].combine_chunks(), kept['id'].combine_chunks()],
            fields=list(WEBPERSON_SCHEMA.field('image').type)),
        image_path=kept['id'],
        **{field: pc.utf8_trim_whitespace(kept[field])
           for field in CAPTION_FIELDS})
    if word_confidences:
        names = [f'{field}_word_confidences' for field in CAPTION_FIELDS]
        columns.update({name: kept[name] for name in names})
        schema = pa.schema(list(schema) + [(name, WORD_CONFIDENCES)
                                           for name in names])
    table = pa.table(columns, schema=schema)
    if len(table):
        write_parquet(table, osp.join(folder, f'{shard}.parquet'),
                      row_group_size=100)
    reasons = pc.value_counts(drops['reason'].drop_null().combine_chunks())
    counts = Counter(crops=len(crops), kept=len(table), **{
        'not captioned': len(crops) - len(crops.select(['id']).join(
            captioned.select(['id']), 'id', join_type='inner'))})
    counts.update({f'{REASON}{reason}': count for reason, count in zip(
        reasons.field('values').to_pylist(),
        reasons.field('counts').to_pylist())})
    return counts


def run_export_stage(out_dir: str, min_words: int = 8,
                     num_buckets: int = 16,
                     word_confidences: bool = False) -> dict:
    """Clean, deduplicate and export the captioned crops of ``out_dir``
    into ``out_dir/data`` (module docstring). Returns (and writes) the
    report.

    Args:
        out_dir (str): The corpus folder of the earlier stages.
        min_words (int): Shorter captions are ``truncated``.
        num_buckets (int): Hash buckets of the caption groupby (one task
            each, which reads a footer of every shard's file: tens to low
            hundreds).
        word_confidences (bool): Also export each caption's word
            confidences (``caption1_word_confidences``,
            ``caption2_word_confidences``; null where the caption stage
            ran without ``logprobs``), which ``AnnotateTokens`` reads.
    """
    import ray
    start = time.monotonic()
    shards = finished_crop_shards(out_dir)
    work = osp.join(out_dir, 'export.part')
    shutil.rmtree(work, ignore_errors=True)
    checked, drops, data = (osp.join(work, name)
                            for name in ('checked', 'drops', 'data'))
    for folder in (checked, drops, data):
        os.makedirs(folder)
    run_tasks = task_runner('ray', int(ray.cluster_resources().get(
        'CPU', 1)))
    run_all(run_tasks, check_shard, [
        (shard, out_dir, min_words, num_buckets, checked)
        for shard in shards], 'export: checking captions (shards)')
    run_all(run_tasks, find_bucket_drops, [
        (bucket, checked, drops) for bucket in range(num_buckets)],
        'export: finding repeated captions (buckets)')
    counts: Counter = Counter()
    run_all(run_tasks, export_shard, [
        (shard, out_dir, drops, data, word_confidences)
        for shard in shards], 'export: writing shards', counts.update)
    num_files = _name_and_swap(data, osp.join(out_dir, 'data'))
    seconds = time.monotonic() - start
    crops = counts['crops']
    dropped = {key[len(REASON):]: count for key, count in counts.items()
               if key.startswith(REASON)}
    if counts['not captioned']:
        dropped['not captioned'] = counts['not captioned']
    report = dict(crops=crops, kept=counts['kept'],
                  dropped_captions=dict(sorted(dropped.items())),
                  shards=num_files, seconds=round(seconds, 2),
                  crops_per_s=round(crops / seconds, 2) if seconds else None)
    shutil.rmtree(work, ignore_errors=True)
    write_json(osp.join(out_dir, 'export_report.json'), report, indent=1)
    return report


def _name_and_swap(written: str, folder: str) -> int:
    """Rename the per-shard files of ``written`` to
    ``train-XXXXX-of-YYYYY.parquet`` in shard order (an empty corpus gets
    one empty file) and swap ``written`` in as ``folder``."""
    files = sorted(os.listdir(written))
    if not files:
        write_parquet(WEBPERSON_SCHEMA.empty_table(),
                      osp.join(written, 'empty.parquet'))
        files = ['empty.parquet']
    for index, name in enumerate(files):
        os.rename(osp.join(written, name), osp.join(
            written, f'train-{index:05d}-of-{len(files):05d}.parquet'))
    replace_folder(written, folder)
    return len(files)
