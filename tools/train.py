"""Train a gadms model: ``python tools/train.py CONFIG [options]``."""
import argparse
import os

import torch
from mmengine.config import Config

from gadms.cli import add_common_args, build_runner, load_config
from gadms.cli.paper_protocol import apply_paper_protocol
from gadms.cli.preflight import check_weights, preflight, start_from_scratch
from gadms.engine.global_batch import fit_global_batch, world_size_from_env


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a retriever')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint (it must hold the optimizer '
        'state), or from the latest resumable checkpoint in the work dir if '
        'no path is given')
    parser.add_argument(
        '--load-from',
        help='start a new training from the weights of this checkpoint '
        '(epoch 1, fresh optimizer and schedule)')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='auto',
        choices=['auto', 'float16', 'bfloat16'],
        help='mixed precision through AmpOptimWrapper: float16 with loss '
        'scaling (GPU) or bfloat16; auto = float16 on GPU, bfloat16 on CPU')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument(
        '--scale-batch',
        action='store_true',
        help="when processes x batch_size is not the recipe's global batch "
        '(auto_scale_lr.base_batch_size), set batch_size to global batch / '
        'processes (default: refuse to train)')
    scaling.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='when processes x batch_size is not the recipe\'s global '
        'batch, keep batch_size and scale the learning rate linearly '
        "(MMEngine's auto_scale_lr)")
    parser.add_argument(
        '--tensorboard',
        action='store_true',
        help='also log losses and metrics for TensorBoard (MMEngine\'s '
        'TensorboardVisBackend: WORK_DIR/<run>/vis_data/events.out.*; '
        'needs the tensorboard package, requirements/optional.txt)')
    parser.add_argument(
        '--wandb',
        action='store_true',
        help="also log to Weights & Biases (MMEngine's WandbVisBackend; "
        'needs wandb; WANDB_MODE=offline keeps the run local)')
    parser.add_argument(
        '--paper-protocol',
        action='store_true',
        help='the protocol behind the paper\'s numbers (the released code): '
        'select models on the test splits, keep the best checkpoint per '
        'benchmark, fine-tune from the pretraining checkpoint best on '
        'CUHK-PEDES (gadms.cli.paper_protocol)')
    parser.add_argument(
        '--from-scratch',
        action='store_true',
        help='train from random weights: no backbone weights and no '
        'checkpoint, also in a recipe that declares weights_required')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='a pre-flight check without training: for the process count '
        'of the launch (WORLD_SIZE or SLURM_NTASKS; e.g. WORLD_SIZE=8 '
        'python tools/train.py CONFIG --dry-run), print the global batch, '
        'learning rate, weights, data folders and estimated GPU memory, '
        'and exit non-zero when something the run needs is missing')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='with --dry-run, also print the whole resolved config')
    parser.add_argument(
        '--gpu-memory',
        type=float,
        help='with --dry-run, the GB of one GPU to check the memory '
        'estimate against (default: the CUDA device here, else 40)')
    add_common_args(parser)
    return parser.parse_args()


def apply_train_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Fold the training options into the config."""
    if args.amp:
        dtype = args.amp
        if dtype == 'auto':
            dtype = 'float16' if torch.cuda.is_available() else 'bfloat16'
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = dtype
    if args.load_from is not None and args.resume is not None:
        raise SystemExit('--load-from starts a new training and --resume '
                         'continues one: pass one of them')
    if args.from_scratch and (args.load_from or args.resume):
        raise SystemExit('--from-scratch starts from random weights: it '
                         'takes neither --load-from nor --resume')
    if args.load_from is not None:
        cfg.load_from = args.load_from
        cfg.resume = False
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    for flag, backend in (('tensorboard', 'TensorboardVisBackend'),
                          ('wandb', 'WandbVisBackend')):
        if getattr(args, flag):
            cfg.visualizer.vis_backends.append(dict(type=backend))
    if args.from_scratch:
        start_from_scratch(cfg)
    if args.paper_protocol:
        try:
            apply_paper_protocol(cfg, keep_load_from=_names_load_from(args))
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'{args.config}: {err}') from err
    if args.scale_batch:
        cfg.global_batch_policy = 'scale_batch'
    elif args.auto_scale_lr:
        cfg.global_batch_policy = 'scale_lr'
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
        cfg.default_hooks.checkpoint.save_best = None
    return cfg


def _names_load_from(args: argparse.Namespace) -> bool:
    """Whether the command line names the checkpoint to start from."""
    return args.load_from is not None or 'load_from' in (args.cfg_options
                                                         or {})


def _card_gb() -> float:
    """The memory of this machine's CUDA device in GB, None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1e9


def dry_run(cfg: Config, args: argparse.Namespace) -> None:
    """Print the pre-flight summary (on the first process of a launch
    only) and exit non-zero when something the run needs is missing."""
    report = preflight(cfg, world_size_from_env(),
                       args.gpu_memory or _card_gb())
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if rank == '0':
        if args.verbose:
            print(cfg.pretty_text)
        print(report.text())
    if report.problems:
        raise SystemExit(1)


def main() -> None:
    args = parse_args()
    cfg = apply_train_args(load_config(args), args)
    # checked here too, before the model is built (the runner checks again
    # with the process group's size)
    try:
        cfg.train_dataloader, cfg.auto_scale_lr = fit_global_batch(
            cfg.train_dataloader, cfg.get('auto_scale_lr'),
            world_size_from_env(), cfg.get('global_batch_policy', 'refuse'))
    except ValueError as err:
        raise SystemExit(f'{args.config}: {err}') from err
    if args.dry_run:
        dry_run(cfg, args)
        return
    problems = check_weights(cfg)
    if problems:
        raise SystemExit(f'{args.config}: ' + '; '.join(problems))
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
