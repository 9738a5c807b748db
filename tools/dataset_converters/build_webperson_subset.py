"""Write a seeded subset of WebPerson (e.g. 0.1M / 0.5M / 1M images).

    python tools/dataset_converters/build_webperson_subset.py \
        data/WebPerson data/WebPerson-100k --num-images 100000 --seed 0

The subset holds the images that ``WebPerson(subset=dict(num_images=N,
seed=S))`` selects (for one seed, smaller subsets are contained in larger
ones), in corpus order and in the input's form: parquet shards (one output
shard per input shard, one shard in memory at a time) or, for the JSON
form, an annotation file plus an ``images`` link to the input's images.
"""
import argparse
import os
import os.path as osp

import numpy as np
import pyarrow.parquet as pq

from gadms.common.atomic import write_json, write_parquet
from gadms.common.formats import (CAPTION_FIELDS, WEBPERSON_JSON_NAME,
                                  webperson_json_entry)
from gadms.common.progress import Progress
from gadms.datasets import WebPerson


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a seeded WebPerson subset')
    parser.add_argument('data_root', help='WebPerson folder')
    parser.add_argument('out_dir', help='folder to create')
    parser.add_argument('--ann-file', default='data',
                        help='parquet shard folder/glob or JSON file, '
                        'relative to data_root (default: data)')
    parser.add_argument('--num-images', type=int, required=True)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def write_parquet_subset(corpus, rows: np.ndarray, out_dir: str) -> int:
    """One output shard per input shard with selected rows, renumbered as
    a complete ``train-XXXXX-of-YYYYY`` set."""
    os.makedirs(osp.join(out_dir, 'data'), exist_ok=True)
    shard_of_row = np.searchsorted(corpus.file_starts, rows, 'right') - 1
    selected = [(file, rows[shard_of_row == index] -
                 corpus.file_starts[index])
                for index, file in enumerate(corpus.files)]
    selected = [(file, local) for file, local in selected if len(local)]
    progress = Progress(len(selected), 'writing the subset')
    for number, (file, local) in enumerate(selected):
        write_parquet(
            pq.read_table(file).take(local),
            osp.join(out_dir, 'data',
                     f'train-{number:05d}-of-{len(selected):05d}.parquet'))
        progress.update()
    progress.close()
    return len(selected)


def write_json_subset(dataset: WebPerson, out_dir: str) -> None:
    corpus = dataset.corpus
    entries = [
        webperson_json_entry(
            corpus.paths[row].as_py(),
            tuple(corpus.captions[field][row].as_py()
                  for field in CAPTION_FIELDS))
        for row in dataset.rows.tolist()
    ]
    os.makedirs(out_dir, exist_ok=True)
    write_json(osp.join(out_dir, WEBPERSON_JSON_NAME), entries)
    link = osp.join(out_dir, 'images')
    if not osp.lexists(link):
        os.symlink(osp.abspath(dataset.data_prefix['img_path']), link)


def main() -> None:
    args = parse_args()
    dataset = WebPerson(
        data_root=args.data_root,
        ann_file=args.ann_file,
        subset=dict(num_images=args.num_images, seed=args.seed))
    if dataset.is_json:
        write_json_subset(dataset, args.out_dir)
        print(f'wrote {args.num_images} images to '
              f'{osp.join(args.out_dir, WEBPERSON_JSON_NAME)}')
    else:
        shards = write_parquet_subset(dataset.corpus, dataset.rows,
                                      args.out_dir)
        print(f'wrote {args.num_images} images in {shards} shards to '
              f'{osp.join(args.out_dir, "data")}')


if __name__ == '__main__':
    main()
