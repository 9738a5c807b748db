"""Show which words the gradient-attention scorer trusts.

    python tools/analysis_tools/visualize_token_scores.py CONFIG CHECKPOINT \
        --split test --num 8 --out-dir work_dirs/token_scores
    python tools/analysis_tools/visualize_token_scores.py CONFIG CHECKPOINT \
        --image person.jpg --caption "a man in a grey coat ..." --out-dir vis

Scores each caption against its image with the model's scorer (a model
without one, e.g. CLIP-SDM, needs ``--default-scorer``: a
``GradAttnScorer`` over its last text layers), merges BPE pieces into
words, and shows for each word its score, the probability that each view
of the model's dual-mask neck masks it (bars: grey the SDM view, green the
MTP view) and one actual draw of the neck's masks (``--step``): struck out
if the SDM view replaced it, boxed if the MTP view made it a target.
Writes one PNG per caption, ``overview.png`` (all captions stacked), one
thumbnail per image and an ``index.html``.
"""
import argparse
import os
import os.path as osp

import numpy as np
import torch

from gadms.apis import TextPersonInferencer
from gadms.apis.token_view import score_pairs, token_scorer
from gadms.cli import (add_cfg_options_arg, add_checkpoint_args, add_data_args,
                       apply_checkpoint_args, read_tool_config)
from gadms.common.atomic import atomic_write, write_image
from gadms.registry import DATASETS
from gadms.visualization import draw_token_scores, token_scores_html, word_rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Token-score pictures')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='test',
                        help="the config's split to draw captions from")
    parser.add_argument('--num', type=int, default=8,
                        help='images of the split to show, each with all '
                        'its captions (SynthPerson and CUHK-PEDES: two)')
    parser.add_argument('--step', type=int, default=0,
                        help='the training step whose mask draw is shown '
                        '(the draws are keyed by caption and step)')
    parser.add_argument('--image', help='an image file instead of a split')
    parser.add_argument('--caption', nargs='+', help='its caption(s)')
    parser.add_argument('--out-dir', default='work_dirs/token_scores')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--default-scorer', action='store_true',
                        help='score with a GradAttnScorer when the model '
                        'has no scorer of its own')
    add_checkpoint_args(parser)
    add_cfg_options_arg(parser)
    add_data_args(parser)
    return parser.parse_args()


def samples(args, inferencer: TextPersonInferencer) -> list:
    """(BGR image, caption, image path) triples."""
    if args.image:
        if not args.caption:
            raise SystemExit('--image needs --caption')
        image = inferencer.read_image(args.image)
        return [(image, caption, args.image) for caption in args.caption]
    dataset_cfg = inferencer.cfg[f'{args.split}_dataloader'].dataset
    dataset = DATASETS.build(dict(dataset_cfg, split=args.split,
                                  pipeline=[], test_mode=True))
    triples = []
    for idx in range(min(args.num, len(dataset))):
        info = dataset.get_data_info(idx)
        image = info.get('img')
        if image is None:
            image = inferencer.read_image(info['img_path'])
        triples += [(image, c, info['img_path']) for c in info['captions']]
    return triples


def main() -> None:
    args = parse_args()
    apply_checkpoint_args(args)
    inferencer = TextPersonInferencer(
        read_tool_config(args), args.checkpoint,
        args.device, args.partial_load)
    try:
        scorer = token_scorer(inferencer.model, args.default_scorer)
    except ValueError as err:
        raise SystemExit(f'{err}; pass --default-scorer to score with a '
                         'GradAttnScorer') from err
    triples = samples(args, inferencer)
    scored = {k: v.cpu().numpy() if torch.is_tensor(v) else v
              for k, v in score_pairs(inferencer, triples, scorer,
                                      args.step).items()}
    os.makedirs(args.out_dir, exist_ok=True)
    captions, thumbnails, pictures, image_names = [], [], [], {}
    for i, (image, _, path) in enumerate(triples):
        rows = word_rows(
            inferencer.tokenizer.words(torch.from_numpy(
                scored['text_ids'][i])), *(scored[k][i] for k in (
                    'scores', 'p_noise', 'p_info', 'noise', 'mtp')))
        captions.append(rows)
        pictures.append(draw_token_scores(image, rows,
                                          full_bar=scored['full_bar']))
        write_image(osp.join(args.out_dir, f'caption_{i:03d}.png'),
                    pictures[-1])
        if path not in image_names:  # one thumbnail per image
            image_names[path] = f'image_{len(image_names):03d}.png'
            write_image(osp.join(args.out_dir, image_names[path]), image)
        thumbnails.append(image_names[path])
    write_image(osp.join(args.out_dir, 'overview.png'), np.concatenate(
        pictures))
    with atomic_write(osp.join(args.out_dir, 'index.html')) as f:
        f.write(token_scores_html(captions, thumbnails))
    print(f'wrote {len(triples)} caption pictures, overview.png and '
          f'index.html to {args.out_dir}')


if __name__ == '__main__':
    main()
