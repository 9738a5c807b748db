"""Check a benchmark or WebPerson folder and print a report.

    python tools/misc/check_dataset.py cuhk-pedes data/CUHK-PEDES
    python tools/misc/check_dataset.py icfg-pedes data/ICFG-PEDES \
        --ann-file ICFG_PEDES.json
    python tools/misc/check_dataset.py webperson data/WebPerson \
        --ann-file data --max-images 10000

Checks the layout (annotation file, image folder), the schema of every
record (all problems are listed, not only the first), that every
referenced image exists and decodes, the per-split counts against the
published ones, and duplicates (an image referenced twice, a caption
repeated for one image). Exits with 1 when there are errors; count
mismatches and repeated captions are warnings. ``--out`` writes the report
as JSON.
"""
import argparse
import glob
import os.path as osp
import sys
from collections import Counter, defaultdict
from typing import Dict, List

import numpy as np
from terminaltables import AsciiTable

from gadms.common.atomic import write_json
from gadms.common.progress import Progress
from gadms.datasets import (CUHKPEDES, ICFGPEDES, LoadPersonImage, RSTPReid,
                            WebPerson)
from gadms.datasets.transforms import ImageLoadError

BENCHMARKS = {'cuhk-pedes': CUHKPEDES, 'icfg-pedes': ICFGPEDES,
              'rstpreid': RSTPReid}
WEBPERSON_PUBLISHED = (5002723, 10005446)  # images, captions
MAX_LISTED = 20


class Report:
    """Errors and warnings by kind, printed as tables."""

    def __init__(self) -> None:
        self.errors: Dict[str, List[str]] = defaultdict(list)
        self.warnings: Dict[str, List[str]] = defaultdict(list)
        self.tables: List[AsciiTable] = []

    def print(self) -> None:
        for table in self.tables:
            print(table.table)
        for title, problems in (('errors', self.errors),
                                ('warnings', self.warnings)):
            if not problems:  # the verdict line says "0 errors"
                continue
            rows = [['kind', 'count', f'first {MAX_LISTED}']]
            rows += [[kind, len(items), '\n'.join(items[:MAX_LISTED])]
                     for kind, items in problems.items()]
            print(AsciiTable(rows, title=title).table)
        verdict = 'FAILED' if self.errors else 'OK'
        print(f'{verdict}: {sum(map(len, self.errors.values()))} errors, '
              f'{sum(map(len, self.warnings.values()))} warnings')

    def to_dict(self) -> dict:
        return dict(errors=self.errors, warnings=self.warnings)


def check_images(samples: List[dict], decode: bool, report: Report) -> None:
    """Record the missing and (with ``decode``) undecodable images of
    ``samples`` (dicts with ``img_path``, ``source``, maybe ``img_bytes``).
    """
    load = LoadPersonImage()
    progress = Progress(len(samples), 'checking images')
    for sample in samples:
        try:
            if decode:
                load(dict(sample))
            elif 'img_bytes' not in sample and not osp.isfile(
                    sample['img_path']):
                raise ImageLoadError(f'{sample["source"]}: image '
                                     f'{sample["img_path"]} does not exist')
        except ImageLoadError as err:
            kind = 'missing image' if 'does not exist' in str(err) else (
                'undecodable image')
            report.errors[kind].append(str(err))
        progress.update()
    progress.close()


def other_annotation_files(ann_file: str) -> str:
    """When ``ann_file`` is missing, a hint naming the JSON files next to
    it (e.g. IRRA's ``ICFG_PEDES.json`` for ``ICFG-PEDES.json``)."""
    if osp.exists(ann_file):
        return ''
    found = sorted(osp.basename(p) for p in glob.glob(
        osp.join(osp.dirname(ann_file), '*.json')))
    if not found:
        return ''
    return (f'; the folder holds {", ".join(found)}: pass --ann-file '
            f'{found[0]}')


def check_benchmark(kind: str, data_root: str, ann_file: str,
                    decode: bool, report: Report, **reader_options) -> None:
    """Run the reader's checks over every record of every split."""
    loader = BENCHMARKS[kind](data_root=data_root, ann_file=ann_file,
                              lazy_init=True, **reader_options)
    image_folder = loader.data_prefix['img_path']
    if not osp.isdir(image_folder):
        report.errors['layout'].append(f'image folder {image_folder} is '
                                       'missing')
    try:
        records = loader.read_records()
    except (OSError, ValueError) as err:
        report.errors['annotation file'].append(
            str(err) + other_annotation_files(loader.ann_file))
        return
    counts = {split: [set(), 0, 0] for split in loader.SPLITS}
    parsed, samples, train_ids = [], [], []
    for index, raw in enumerate(records):
        try:  # the reader's own checks
            record = loader.parse_record(raw, index)
        except ValueError as err:
            report.errors['schema'].append(str(err))
            continue
        parsed.append((index, raw))
        for caption in loader.empty_captions(record):
            report.warnings['caption that tokenises to nothing'].append(
                f'{record["source"]}: {caption!r} (dropped by the reader)')
        split_counts = counts[record['split']]
        split_counts[0].add(record['pid'])
        split_counts[1] += 1
        split_counts[2] += len(record['captions'])
        if record['split'] == 'train':
            train_ids.append(record['pid'])
        samples.append(dict(img_path=record['img_path'],
                            source=record['source']))
        repeated = [c for c, n in Counter(record['captions']).items()
                    if n > 1]
        if repeated:
            report.warnings['repeated caption'].append(
                f'record {index}: {repeated[0]!r}')
    try:
        loader.train_pids_of(train_ids)
    except ValueError as err:
        report.errors['training ids'].append(str(err))
    for message in loader.shared_images(parsed):
        report.errors['image referenced twice'].append(message)
    rows = [['split', 'identities', 'images', 'captions', 'published']]
    for split, (ids, images, captions) in counts.items():
        found = (len(ids), images, captions)
        published = loader.PUBLISHED_COUNTS.get(split)
        rows.append([split, *found, ' / '.join(map(str, published))])
        if found != published:
            report.warnings['counts differ from published'].append(
                f'{split}: {found} vs {published}')
    report.tables.append(AsciiTable(rows, title=loader.name))
    check_images(samples, decode, report)


def check_webperson(data_root: str, ann_file: str, decode: bool,
                    max_images: int, report: Report,
                    **reader_options) -> None:
    try:  # the reader's own checks
        dataset = WebPerson(data_root=data_root, ann_file=ann_file,
                            **reader_options)
    except (OSError, ValueError) as err:
        report.errors['annotations'].append(str(err))
        return
    for _, description in dataset.corpus.empty_captions:
        report.warnings['caption that tokenises to nothing'].append(
            f'{description} (its image is dropped by the reader)')
    num_images = len(dataset) // 2
    rows = [['images', 'captions', 'published images', 'published captions'],
            [num_images, len(dataset), *WEBPERSON_PUBLISHED]]
    report.tables.append(AsciiTable(rows, title='WebPerson'))
    if (num_images, len(dataset)) != WEBPERSON_PUBLISHED:
        report.warnings['counts differ from published (full corpus)'].append(
            f'{num_images} images, {len(dataset)} captions')
    checked = np.arange(num_images)
    if max_images and max_images < num_images:
        checked = np.sort(np.random.default_rng(0).choice(
            num_images, max_images, replace=False))
        report.warnings['sampled'].append(
            f'images of {max_images} of {num_images} rows checked')
    samples = [dataset.get_data_info(2 * int(i)) for i in checked]
    for path, n in Counter(s['img_path'] for s in samples).items():
        if n > 1:
            report.errors['image referenced twice'].append(f'{path}: {n} rows')
    check_images(samples, decode, report)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Check a dataset folder')
    parser.add_argument('kind', choices=sorted(BENCHMARKS) + ['webperson'])
    parser.add_argument('data_root')
    parser.add_argument('--ann-file', help='annotation file (or parquet '
                        'shards for webperson) relative to data_root')
    parser.add_argument('--no-decode', action='store_true',
                        help='only check that images exist')
    parser.add_argument('--max-images', type=int, default=0,
                        help='webperson: check this many random rows only')
    parser.add_argument('--train-pids', choices=['minus_one', 'as_is',
                                                 'relabel'],
                        help="the reader's train_pids option (default: the "
                        "benchmark's rule)")
    parser.add_argument('--allow-outside-root', action='store_true',
                        help="the readers' allow_outside_root option")
    parser.add_argument('--out', help='write the report as JSON')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    report = Report()
    if args.kind == 'webperson':
        check_webperson(args.data_root, args.ann_file or 'data',
                        not args.no_decode, args.max_images, report,
                        allow_outside_root=args.allow_outside_root)
    else:
        check_benchmark(args.kind, args.data_root, args.ann_file,
                        not args.no_decode, report,
                        train_pids=args.train_pids,
                        allow_outside_root=args.allow_outside_root)
    report.print()
    if args.out:
        write_json(args.out, report.to_dict(), indent=1)
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
