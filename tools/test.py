"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``."""
import argparse

from mmengine.fileio import dump

from gadms.evaluation import NonFiniteScoresError
from gadms.utils import add_common_args, build_runner, load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate text-to-image person retrieval')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='dump the metrics to this file (json/pkl/yaml)')
    parser.add_argument(
        '--out-rankings',
        help="write every query's top-k gallery images to this JSON Lines "
        'file (format: TextPersonRetrievalMetric, docs/evaluation.md)')
    parser.add_argument('--rankings-topk', type=int, default=10,
                        help='gallery images per query in --out-rankings')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    # evaluation loads every key of the model, whatever a training config
    # allows for its load_from, unless --partial-load
    cfg.load_partial = args.partial_load
    # all weights come from the checkpoint: do not read the backbone's
    # initial CLIP weights
    cfg.model.backbone.pretrained = None
    if args.out_rankings:
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        for evaluator in evaluators:
            evaluator.update(rankings_file=args.out_rankings,
                             rankings_topk=args.rankings_topk)
    try:
        metrics = build_runner(cfg).test()
    except NonFiniteScoresError as err:
        raise SystemExit(f'checkpoint {args.checkpoint} cannot be scored: '
                         f'{err}') from err
    if args.out:
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
