"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``, or CLIP
weights zero-shot: ``python tools/test.py CONFIG --pretrained ViT-B-16.pt``."""
import argparse
import os.path as osp

from mmengine.fileio import dump
from mmengine.model import is_model_wrapper

from gadms.cli import add_common_args, build_runner, load_config
from gadms.cli.paper_protocol import benchmark_names
from gadms.evaluation import NonFiniteScoresError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate text-to-image person retrieval')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='gadms checkpoint file (or --pretrained)')
    parser.add_argument(
        '--pretrained',
        help='evaluate these CLIP weights zero-shot instead of a '
        'checkpoint: any file the backbone reads as `pretrained` (OpenAI '
        'ViT-B-16.pt, an open_clip or CLIP state dict)')
    parser.add_argument(
        '--out', help='dump the metrics to this file (json/pkl/yaml)')
    parser.add_argument(
        '--out-rankings',
        help="write every query's top-k gallery images to this JSON Lines "
        'file (format: TextPersonRetrievalMetric, docs/evaluation.md)')
    parser.add_argument('--rankings-topk', type=int, default=10,
                        help='gallery images per query in --out-rankings')
    parser.add_argument(
        '--benchmark',
        help='test on this benchmark of the config\'s test sets only (its '
        'NAME, e.g. ICFG-PEDES): one table cell of docs/reproduce.md')
    add_common_args(parser, work_dir_help='where the test log goes',
                    cfg_example='test_dataloader.batch_size=32')
    args = parser.parse_args()
    if args.checkpoint is None and args.pretrained is None:
        parser.error('give a checkpoint to test, or --pretrained CLIP '
                     'weights')
    if args.checkpoint is not None and args.pretrained is not None:
        parser.error('give a checkpoint or --pretrained CLIP weights, '
                     'not both')
    return args


def check_weights_exist(args: argparse.Namespace) -> None:
    """Stop, naming the file, when the weights to test do not exist
    (before any dataset is read)."""
    for option, path in (('checkpoint', args.checkpoint),
                         ('--pretrained', args.pretrained)):
        if path is not None and not osp.isfile(path):
            raise SystemExit(f'{option} {path} does not exist')


def keep_benchmark(cfg, name: str) -> None:
    """Cut the config's test sets to the benchmark called ``name``."""
    dataset = cfg.test_dataloader.dataset
    parts = dataset.get('datasets', [dataset])
    names = benchmark_names(dataset)
    if name not in names:
        raise SystemExit(f'--benchmark {name}: the config tests on '
                         f'{names}')
    cfg.test_dataloader.dataset = parts[names.index(name)]


def main() -> None:
    args = parse_args()
    check_weights_exist(args)
    cfg = load_config(args)
    if args.benchmark:
        keep_benchmark(cfg, args.benchmark)
    cfg.load_from = args.checkpoint
    # evaluation loads every key of the model, whatever a training config
    # allows for its load_from, unless --partial-load
    cfg.load_partial = args.partial_load
    # all weights come from the checkpoint, or all the backbone's from
    # --pretrained (the heads that testing does not use stay initialised)
    cfg.model.backbone.pretrained = args.pretrained
    if args.out_rankings:
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        for evaluator in evaluators:
            evaluator.update(rankings_file=args.out_rankings,
                             rankings_topk=args.rankings_topk)
    runner = build_runner(cfg)
    if args.pretrained:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        model.init_weights()  # reads backbone.pretrained
    try:
        metrics = runner.test()
    except NonFiniteScoresError as err:
        weights = f'checkpoint {args.checkpoint}' if args.checkpoint else (
            f'CLIP weights {args.pretrained}')
        raise SystemExit(f'{weights} cannot be scored: {err}') from err
    if args.out:
        dump(metrics, args.out)


if __name__ == '__main__':
    main()
