"""Search a gallery by text and draw the results.

    python tools/retrieve.py CONFIG CHECKPOINT --gallery DIR \
        --query "a woman in a red coat with a black backpack" --topk 10 \
        --out-file results.png [--save-index gallery.pth]
    python tools/retrieve.py CONFIG CHECKPOINT --gallery index.pth --query ...
    python tools/retrieve.py CONFIG CHECKPOINT --split test --query-caption 0

``--gallery`` is an image folder or a saved index (``.pth``, refused when
it was built by another model; it finds its images from any directory,
and ``--gallery-root`` points it at its folder if that moved);
``--split test`` (or ``val``) searches that split of the config's dataset,
whose pids colour the borders: green for the query's person, red for
another, as ``tools/analysis_tools/visualize_token_scores.py --split``
reads it. ``--query-caption N`` takes the split's N-th caption (0-based,
in dataset order) and its person as the query. The old spellings
``--gallery test`` and ``--out`` still work, with a note.

An image folder is walked once (links that loop back, leave the folder or
repeat a file are skipped, as are files that are not readable images);
the skipped entries are counted and listed. ``--strict`` refuses a folder
with any, ``--allow-outside-links`` follows links that leave it.
"""
import argparse
import sys

from terminaltables import AsciiTable

from gadms.apis import TextPersonInferencer
from gadms.cli import (add_cfg_options_arg, add_checkpoint_args, add_data_args,
                       apply_checkpoint_args, read_tool_config)
from gadms.common.atomic import write_image
from gadms.registry import DATASETS
from gadms.visualization import draw_retrieval

SPLITS = ('test', 'val')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Text-to-person search')
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='the model\'s checkpoint file')
    gallery = parser.add_mutually_exclusive_group(required=True)
    gallery.add_argument('--gallery',
                         help='an image folder, or a saved index (.pth)')
    gallery.add_argument('--split', choices=SPLITS,
                         help="search this split of the config's dataset")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument('--query', help='the caption to search for')
    query.add_argument('--query-caption', type=int, metavar='N',
                       help="search with the N-th caption (0-based) of "
                       '--split, marking its person')
    parser.add_argument('--topk', type=int, default=10,
                        help='results shown (default: 10)')
    parser.add_argument('--out-file', help='draw the results into this PNG')
    parser.add_argument('--out', dest='old_out', help=argparse.SUPPRESS)
    parser.add_argument('--save-index', help='save the gallery index here '
                        '(.pth), to search it again without encoding')
    parser.add_argument('--gallery-root',
                        help="a saved index's image folder, when it has "
                        'moved since the index was built')
    parser.add_argument('--strict', action='store_true',
                        help='refuse a gallery folder with entries that '
                        'cannot be indexed (default: skip and list them)')
    parser.add_argument('--allow-outside-links', action='store_true',
                        help='follow links that leave the gallery folder')
    parser.add_argument('--device', default='cpu',
                        help='torch device (default: cpu)')
    parser.add_argument('--batch-size', type=int, default=64,
                        help='images encoded at a time (default: 64)')
    add_checkpoint_args(parser)
    add_cfg_options_arg(parser, example='test_dataloader.batch_size=32')
    add_data_args(parser)
    return parser


def parse_args() -> argparse.Namespace:
    return with_old_spellings(build_parser().parse_args())


def with_old_spellings(args: argparse.Namespace) -> argparse.Namespace:
    """Map the deprecated ``--gallery test|val`` and ``--out`` to
    ``--split`` and ``--out-file``, with a note on stderr."""
    if args.gallery in SPLITS:
        print(f'note: --gallery {args.gallery} is deprecated, use --split '
              f'{args.gallery}', file=sys.stderr)
        args.split, args.gallery = args.gallery, None
    if args.old_out:
        print('note: --out is deprecated, use --out-file', file=sys.stderr)
        args.out_file = args.out_file or args.old_out
    return args


def split_dataset(inferencer: TextPersonInferencer, split: str):
    """The config's dataset of ``split``, without its pipeline."""
    dataset_cfg = inferencer.cfg[f'{split}_dataloader'].dataset.copy()
    return DATASETS.build(dict(dataset_cfg, split=split, pipeline=[]))


def main() -> None:
    args = parse_args()
    apply_checkpoint_args(args)
    inferencer = TextPersonInferencer(
        read_tool_config(args), args.checkpoint,
        args.device, args.partial_load)
    dataset = None
    if args.split:
        dataset = split_dataset(inferencer, args.split)
    query, query_pid = args.query, None
    if args.query_caption is not None:
        query, query_pid = split_caption(dataset, args)
    if dataset is not None:
        index = inferencer.build_index(dataset, args.batch_size)
    elif args.gallery.endswith('.pth'):
        index = inferencer.load_index(args.gallery, args.gallery_root)
    else:
        index = inferencer.build_index(
            args.gallery, args.batch_size, strict=args.strict,
            allow_outside_links=args.allow_outside_links)
        print_skipped(index.skipped)
    if args.save_index:
        index.save(args.save_index)
    try:
        hits = inferencer.search(query, index, args.topk)[0]
    except ValueError as err:
        raise SystemExit(f'--query {query!r}: {err}') from err
    print_table(query, hits, query_pid)
    if args.out_file:
        images = [load_hit(dataset, hit) for hit in hits]
        picture = draw_retrieval(query, hits, images, query_pid)
        try:
            write_image(args.out_file, picture)
        except OSError as err:
            raise SystemExit(f'could not write {args.out_file}: {err}')
        print(f'wrote {args.out_file}')


def split_caption(dataset, args: argparse.Namespace) -> tuple:
    """The ``--query-caption``-th caption of the split and its pid."""
    if dataset is None:
        raise SystemExit('--query-caption needs --split test or val')
    captions = [(c, dataset.get_data_info(i)['pid'])
                for i in range(len(dataset))
                for c in dataset.get_data_info(i)['captions']]
    if not 0 <= args.query_caption < len(captions):
        raise SystemExit(
            f'--query-caption {args.query_caption} is out of range: the '
            f'{args.split} split has {len(captions)} captions (0 to '
            f'{len(captions) - 1})')
    return captions[args.query_caption]


def print_skipped(skipped: list) -> None:
    """The gallery folder's skipped entries, a line each."""
    if skipped:
        print(f'skipped {len(skipped)} entries of the gallery folder:')
        for path, reason in skipped:
            print(f'  {path}: {reason}')


def load_hit(dataset, hit: dict):
    """The hit's image; a drawn dataset (SynthPerson) draws it again."""
    if dataset is not None:
        info = dataset.get_data_info(hit['index'])
        if 'img' in info:
            return info['img']
    return TextPersonInferencer.read_image(hit['path'])


def print_table(query: str, hits: list, query_pid) -> None:
    rows = [['rank', 'score', 'pid', 'match', 'image']]
    for hit in hits:
        match = '' if query_pid is None or hit['pid'] is None else (
            'yes' if hit['pid'] == query_pid else 'no')
        rows.append([hit['rank'], f'{hit["score"]:.4f}',
                     '' if hit['pid'] is None else hit['pid'], match,
                     hit['path']])
    print(f'query: {query}')
    print(AsciiTable(rows).table)


if __name__ == '__main__':
    main()
