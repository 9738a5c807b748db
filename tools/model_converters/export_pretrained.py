"""Package a trained checkpoint as a folder to share (the Hugging Face
Hub's layout): ``model.safetensors``, ``config.json`` and a ``README.md``
model card.

    python tools/model_converters/export_pretrained.py CONFIG CHECKPOINT \\
        OUT/ --metrics work_dirs/test/test_metrics.json

``--metrics`` is the file of ``tools/test.py --out`` (or the test's
MMEngine log, ``<timestamp>.json``); its numbers go into the card. The
folder is written whole under a temporary name, loaded back and checked
against the checkpoint before it is renamed into place. Load it with
``TextPersonInferencer.from_pretrained(OUT)``.
"""
import argparse
import os
import os.path as osp
import sys

from gadms.apis import TextPersonInferencer
from gadms.apis.inference import test_image_steps
from gadms.apis.model_card import model_card
from gadms.apis.pretrained import (inference_config, read_metrics,
                                   write_pretrained)
from gadms.common.file_digest import file_sha256


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('out_dir', help='the folder to write')
    parser.add_argument('--metrics',
                        help='test metrics for the card: tools/test.py '
                        '--out file or the test log <timestamp>.json')
    parser.add_argument('--name', help='the model name in the card '
                        '(default: the folder name)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing folder')
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> None:
    """Write the folder, checked by loading it back before it is renamed
    into place."""
    out_dir = osp.abspath(args.out_dir)
    if osp.exists(out_dir) and os.listdir(out_dir) and not args.overwrite:
        raise SystemExit(f'{out_dir} exists and is not empty (replace it '
                         'with --overwrite)')
    metrics = read_metrics(args.metrics)
    inferencer = TextPersonInferencer(args.config, args.checkpoint)
    source = dict(config=args.config, checkpoint=osp.basename(
        args.checkpoint), checkpoint_sha256=file_sha256(args.checkpoint))
    name = args.name or osp.basename(out_dir.rstrip(os.sep))
    card = model_card(name, inferencer.cfg, inferencer.model, metrics,
                      source, inferencer.fingerprint)
    config = inference_config(inferencer.cfg, test_image_steps(
        inferencer.cfg, inferencer.image_size))
    # from_pretrained refuses a folder whose model differs from the
    # fingerprint recorded in it: loading it checks the whole export
    write_pretrained(out_dir, inferencer.model.state_dict(), config,
                     inferencer.fingerprint, card, source,
                     check=TextPersonInferencer.from_pretrained)


def main(argv=None) -> None:
    args = parse_args(argv)
    export(args)
    print(f'wrote {args.out_dir} (model.safetensors, config.json, '
          'README.md)', file=sys.stderr)


if __name__ == '__main__':
    main()
