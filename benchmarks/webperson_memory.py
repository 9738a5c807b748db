"""Memory of the WebPerson dataset at full corpus size.

Generates parquet shards with the published row count (5,002,723 images,
10,005,446 captions) holding one tiny PNG per row, then, in a fresh
process, builds ``WebPerson`` (schema check and a streamed scan of every
caption) and reads random samples, reporting resident memory and time:

    .venv/bin/python benchmarks/webperson_memory.py /tmp/webperson-5m

``--form json`` measures the JSON form of the released code instead (its
parser holds the whole file in Python objects while reading).
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from mmengine.utils import ProgressBar

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

PUBLISHED_IMAGES = 5002723
WORDS = ('a young woman with long black hair wears a white shirt, blue '
         'jeans and black shoes, carrying a brown shoulder bag').split()


def _captions(start: int, stop: int, shift: int) -> pa.Array:
    """Distinct captions of typical length (about 110 characters)."""
    index = np.arange(start, stop)
    words = np.array(WORDS, dtype=object)
    head = [' '.join(np.roll(words, (i + shift) % len(words))[:16])
            for i in range(min(997, stop - start))]
    text = [f'{head[i % len(head)]} #{i}' for i in index]
    return pa.array(text, pa.string())


def generate(folder: str, rows: int, rows_per_shard: int) -> None:
    os.makedirs(folder, exist_ok=True)
    png = cv2.imencode('.png', np.zeros((8, 4, 3), np.uint8))[1].tobytes()
    num_shards = -(-rows // rows_per_shard)
    progress = ProgressBar(num_shards)
    for shard in range(num_shards):
        start = shard * rows_per_shard
        stop = min(rows, start + rows_per_shard)
        paths = pa.array([f'images/{i:08d}.png' for i in range(start, stop)])
        images = pa.StructArray.from_arrays(
            [pa.array([png] * (stop - start), pa.binary()), paths],
            names=['bytes', 'path'])
        table = pa.table(dict(image=images, image_path=paths,
                              caption1=_captions(start, stop, 0),
                              caption2=_captions(start, stop, 7)))
        pq.write_table(table, osp.join(
            folder, f'train-{shard:05d}-of-{num_shards:05d}.parquet'),
            row_group_size=1000)
        progress.update()
    progress.file.write('\n')


def to_json(folder: str, out_file: str) -> None:
    entries = []
    for file in sorted(os.listdir(folder)):
        table = pq.read_table(osp.join(folder, file),
                              columns=['image_path', 'caption1', 'caption2'])
        for path, c1, c2 in zip(*(table[c].to_pylist()
                                  for c in table.column_names)):
            entries.append({path: dict(caption1=c1, caption2=c2)})
    with open(out_file, 'w') as f:
        json.dump(entries, f)


def _rss_mib() -> float:
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith('VmRSS'))
    return int(line.split()[1]) / 1024


def measure(ann_file: str, reads: int) -> dict:
    """Run in a fresh process: build the dataset, read random samples."""
    from gadms.datasets import WebPerson
    start_rss, start = _rss_mib(), time.perf_counter()
    dataset = WebPerson(data_root=osp.dirname(ann_file),
                        ann_file=osp.basename(ann_file))
    built_rss, built = _rss_mib(), time.perf_counter()
    rng = np.random.default_rng(0)
    for idx in rng.integers(0, len(dataset), reads):
        dataset.get_data_info(int(idx))
    read = time.perf_counter()
    return dict(
        captions=len(dataset),
        rss_before_mib=round(start_rss),
        rss_after_build_mib=round(built_rss),
        rss_after_reads_mib=round(_rss_mib()),
        peak_rss_mib=round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        build_s=round(built - start, 1),
        random_read_ms=round(1000 * (read - built) / reads, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folder', help='where the corpus is generated')
    parser.add_argument('--images', type=int, default=PUBLISHED_IMAGES)
    parser.add_argument('--rows-per-shard', type=int, default=250_000)
    parser.add_argument('--form', choices=['parquet', 'json'],
                        default='parquet')
    parser.add_argument('--reads', type=int, default=2000)
    parser.add_argument('--measure', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.reads)))
        return
    shards = osp.join(args.folder, 'data')
    if not osp.isdir(shards):
        generate(shards, args.images, args.rows_per_shard)
    ann_file = shards
    if args.form == 'json':
        ann_file = osp.join(args.folder, 'annotations.json')
        if not osp.isfile(ann_file):
            to_json(shards, ann_file)
    result = subprocess.run(
        [sys.executable, __file__, args.folder, '--measure', ann_file,
         '--reads', str(args.reads)],
        capture_output=True, text=True, check=True)
    print(f'{args.form}: {result.stdout.strip().splitlines()[-1]}')


if __name__ == '__main__':
    main()
