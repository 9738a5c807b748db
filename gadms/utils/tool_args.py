import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from torch import distributed as torch_dist


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``tools/train.py`` and ``tools/test.py``."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. '
        'train_cfg.max_epochs=2 model.backbone.pretrained=None')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and apply the options of
    :func:`add_common_args`.

    The work dir defaults to ``./work_dirs/<config name>``; without CUDA,
    distributed runs use gloo (see :func:`fall_back_to_gloo`).
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not torch.cuda.is_available():
        fall_back_to_gloo(cfg)
    return cfg


def fall_back_to_gloo(cfg: Config) -> None:
    """Make a machine without CUDA run distributed jobs on gloo.

    MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` before
    creating the process group, and wraps the model in DDP with a GPU
    ``device_ids``; both fail without CUDA. The Runner skips its own
    initialisation when a group exists, so create it here from the
    environment ``torchrun`` sets, and wrap the model without device ids.
    """
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.launcher == 'none':
        return
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False)
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
