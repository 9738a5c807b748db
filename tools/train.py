"""Train a gadms model: ``python tools/train.py CONFIG [options]``."""
import argparse

import torch
from mmengine.config import Config

from gadms.engine.global_batch import fit_global_batch, world_size_from_env
from gadms.utils import add_common_args, build_runner, load_config
from gadms.utils.paper_protocol import apply_paper_protocol


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
        'CUHK-PEDES (gadms.utils.paper_protocol)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='check the config and the global batch for the process count '
        'of the launch (WORLD_SIZE or SLURM_NTASKS), print the resolved '
        'config and exit without training')
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
    if args.paper_protocol:
        apply_paper_protocol(cfg)
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
        print(cfg.pretty_text)
        return
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
