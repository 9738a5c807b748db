"""Search a gallery in the browser.

    python tools/serve.py CONFIG CHECKPOINT --gallery my_photos/
    python tools/serve.py CONFIG CHECKPOINT --gallery gallery.pth
    python tools/serve.py CONFIG CHECKPOINT --split test
    python tools/serve.py --pretrained clip-sdm-folder/ --gallery my_photos/

then open http://127.0.0.1:7860. ``--gallery`` is an image folder (indexed
with a progress bar; ``--save-index`` keeps the index, and what is added
later) or a saved index; ``--split`` serves the config's test (or val)
split, with its pids and captions. Type a sentence to see the best images;
click one to see each word's part in that match; add a folder of the
gallery, or upload an image, without encoding the gallery again.

Safe by default: the app listens on 127.0.0.1 unless ``--host`` is given;
it serves only the indexed images, from inside the gallery folder (links
out of it are refused, as when indexing); queries and uploads are capped
(``--max-query-chars``, ``--max-upload-mib``); an error is one sentence in
the page, its traceback only in this terminal. The app is FastAPI with one
page (``gadms/serving``); ``pip install -r requirements/serve.txt``.
"""
import argparse
import os.path as osp
import sys

import cv2

from gadms.apis import TextPersonInferencer
from gadms.apis.token_view import token_scorer
from gadms.cli import (add_cfg_options_arg, add_checkpoint_args, add_data_args,
                       apply_checkpoint_args, read_tool_config)
from gadms.registry import DATASETS

SPLITS = ('test', 'val')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Search a gallery in the '
                                     'browser')
    parser.add_argument('config', nargs='?', help="the model's config")
    parser.add_argument('checkpoint', nargs='?', help="the model's weights")
    parser.add_argument('--pretrained', help='a pretrained folder '
                        '(export_pretrained.py) instead of CONFIG CHECKPOINT')
    gallery = parser.add_mutually_exclusive_group(required=True)
    gallery.add_argument('--gallery',
                         help='an image folder, or a saved index (.pth)')
    gallery.add_argument('--split', choices=SPLITS,
                         help="serve this split of the config's dataset")
    parser.add_argument('--gallery-root', help="a saved index's image "
                        'folder, when it has moved since the index was built')
    parser.add_argument('--save-index', help='save the index here (.pth) '
                        'after building it and after each addition')
    parser.add_argument('--allow-outside-links', action='store_true',
                        help='index links that leave the gallery folder')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, '
                        'this machine only)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--max-query-chars', type=int, default=300)
    parser.add_argument('--max-upload-mib', type=float, default=10)
    parser.add_argument('--max-batch', type=int, default=32,
                        help='queued searches run as one batch (default: '
                        '32; 1 runs each alone)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch-size', type=int, default=64,
                        help='images encoded at a time (default: 64)')
    add_checkpoint_args(parser)
    add_cfg_options_arg(parser)
    add_data_args(parser)
    args = parser.parse_args(argv)
    if bool(args.pretrained) == bool(args.config):
        parser.error('give CONFIG CHECKPOINT or --pretrained FOLDER')
    if args.split and args.pretrained:
        parser.error('--split needs the training config (CONFIG '
                     'CHECKPOINT): a pretrained folder holds no dataset')
    return args


def load_model(args: argparse.Namespace) -> TextPersonInferencer:
    if args.pretrained:
        return TextPersonInferencer.from_pretrained(args.pretrained,
                                                    args.device)
    apply_checkpoint_args(args)
    return TextPersonInferencer(read_tool_config(args), args.checkpoint,
                                args.device, args.partial_load)


def split_gallery(inferencer: TextPersonInferencer, split: str,
                  batch_size: int) -> tuple:
    """The index of a dataset split, each image's captions, and a reader
    of its images (a drawn dataset's arrays, or its files)."""
    dataset_cfg = inferencer.cfg[f'{split}_dataloader'].dataset.copy()
    dataset = DATASETS.build(dict(dataset_cfg, split=split, pipeline=[]))
    index = inferencer.build_index(dataset, batch_size)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]

    def read_image(row: int) -> tuple:
        image = infos[row].get('img')
        if image is None:
            image = inferencer.read_image(infos[row]['img_path'])
        return cv2.imencode('.png', image)[1].tobytes(), 'image/png'
    return index, [list(info['captions']) for info in infos], read_image


def build_service(args: argparse.Namespace):
    from gadms.serving.service import GalleryService, Limits
    inferencer = load_model(args)
    captions, read_image = None, None
    if args.split:
        index, captions, read_image = split_gallery(inferencer, args.split,
                                                    args.batch_size)
    elif args.gallery.endswith('.pth'):
        index = inferencer.load_index(args.gallery, args.gallery_root)
    else:
        index = inferencer.build_index(
            args.gallery, args.batch_size,
            allow_outside_links=args.allow_outside_links)
    if args.save_index:
        index.save(args.save_index)
    limits = Limits(max_query_chars=args.max_query_chars,
                    max_upload_bytes=int(args.max_upload_mib * (1 << 20)),
                    max_batch=args.max_batch)
    return GalleryService(inferencer, index,
                          token_scorer(inferencer.model, default=True),
                          limits, captions, read_image,
                          save_to=args.save_index)


def main(argv=None) -> None:
    args = parse_args(argv)
    import uvicorn

    from gadms.serving.app import create_app
    service = build_service(args)
    name = osp.basename(args.pretrained or args.config)
    print(f'serving {len(service.index)} images on '
          f'http://{args.host}:{args.port}', file=sys.stderr)
    uvicorn.run(create_app(service, title=f'gadms search: {name}'),
                host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    main()
