import argparse
import os
import os.path as osp
import subprocess
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner
from torch import distributed as torch_dist

from gadms.registry import RUNNERS
from .config_names import resolve_config_path


def add_common_args(parser: argparse.ArgumentParser,
                    work_dir_help: str = 'where logs and checkpoints go',
                    cfg_example: str = 'train_cfg.max_epochs=2') -> None:
    """Options shared by ``tools/train.py`` and ``tools/test.py`` (each
    says what its work dir holds and gives a ``--cfg-options`` example of
    its own)."""
    parser.add_argument('--work-dir', help=f'{work_dir_help} (default: '
                        'work_dirs/<config name>)')
    add_data_args(parser)
    add_cfg_options_arg(parser, cfg_example)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    add_checkpoint_args(parser)
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def add_cfg_options_arg(parser: argparse.ArgumentParser,
                        example: str = 'model.backbone.pretrained=None'
                        ) -> None:
    """``--cfg-options``, for every tool that reads a config, with an
    ``example`` that fits the tool."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help=f'override settings of the config, e.g. {example}')


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile(path)`` with ``--cfg-options`` merged in (an
    earlier name of a renamed config is accepted, with a note)."""
    cfg = Config.fromfile(resolve_config_path(path))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    """``--trust-checkpoint`` and ``--partial-load``, for every tool that
    loads a checkpoint."""
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load checkpoints with full unpickling (weights_only=False); '
        'only for files from a trusted source')
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help='load the checkpoint keys that fit the model and log the '
        'others (default: a checkpoint that does not fit is an error)')


def apply_checkpoint_args(args: argparse.Namespace) -> None:
    """Make ``--trust-checkpoint`` reach every ``torch.load`` that does
    not pass ``weights_only`` (MMEngine's)."""
    if args.trust_checkpoint:
        os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and apply the options of
    :func:`add_common_args`.

    The work dir defaults to ``./work_dirs/<config name>``; without CUDA,
    distributed runs use gloo (see :func:`fall_back_to_gloo`).
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    apply_checkpoint_args(args)
    # an earlier config name: the work dir follows the new one
    args.config = resolve_config_path(args.config)
    cfg = read_config(args.config, args.cfg_options)
    if args.partial_load:
        cfg.load_partial = True
    apply_data_args(cfg, args)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if not torch.cuda.is_available():
        # a dry run starts no process group
        fall_back_to_gloo(cfg, start_group=not getattr(args, 'dry_run',
                                                       False))
    return cfg


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataset of the train/val/test dataloaders (and their
    ``datasets`` lists) at ``data_root``.

    Raises:
        ValueError: the config reads several data folders (e.g. WebPerson
            and three benchmarks) or none.
    """
    _set_dataset_field(cfg, 'data_root', data_root, '--data-root')
    cfg.data_root = data_root


def set_ann_file(cfg: Config, ann_file: str) -> None:
    """Give every dataset of the train/val/test dataloaders the annotation
    file ``ann_file`` (relative to its data root; e.g. IRRA's
    ``ICFG_PEDES.json``).

    Raises:
        ValueError: the config reads several data folders or none.
    """
    _set_dataset_field(cfg, 'ann_file', ann_file, '--ann-file')


def _set_dataset_field(cfg: Config, key: str, value: str,
                       option: str) -> None:
    """Set ``key`` on every dataset that has a ``data_root``; they must
    all read one folder (``option`` names the tool option in the error)."""
    found, parts = set(), []
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader['dataset']
        for part in dataset.get('datasets', [dataset]):
            if 'data_root' in part:
                found.add(part['data_root'])
                parts.append(part)
    if len(found) != 1:
        raise ValueError(
            f'{option} needs a config that reads one data folder; this '
            f'one reads {len(found)} ({sorted(found)}): set each with '
            '--cfg-options')
    for part in parts:
        part[key] = value


def read_tool_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options``, ``--data-root`` and
    ``--ann-file`` applied (for tools that do not build a Runner)."""
    cfg = read_config(args.config, args.cfg_options)
    apply_data_args(cfg, args)
    return cfg


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-root`` and ``--ann-file``, for every tool that reads a
    config's datasets."""
    parser.add_argument(
        '--data-root',
        help="read the config's data from this folder (every dataloader's "
        'dataset; the config must read a single data folder)')
    parser.add_argument(
        '--ann-file',
        help="every dataset's annotation file, relative to its data root "
        "(e.g. IRRA's ICFG_PEDES.json; the config must read a single data "
        'folder)')


def apply_data_args(cfg: Config, args: argparse.Namespace) -> None:
    """Apply the options of :func:`add_data_args` to ``cfg``; a bad use
    exits naming the option."""
    try:
        if args.data_root is not None:
            set_data_root(cfg, args.data_root)
        if args.ann_file is not None:
            set_ann_file(cfg, args.ann_file)
    except ValueError as err:
        raise SystemExit(str(err)) from err


def build_runner(cfg: Config) -> Runner:
    """The config's ``runner_type`` (``GADMSRunner`` in gadms configs),
    or MMEngine's ``Runner``."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def fall_back_to_gloo(cfg: Config, start_group: bool = True) -> None:
    """Make a machine without CUDA run distributed jobs on gloo.

    MMEngine's ``pytorch`` and ``slurm`` launchers call
    ``torch.cuda.set_device`` before creating the process group, and wrap
    the model in DDP with a GPU ``device_ids``; both fail without CUDA. The
    Runner skips its own initialisation when a group exists, so create it
    here from the environment ``torchrun`` or ``srun`` sets (unless
    ``start_group`` is False: a dry run), and wrap the model without device
    ids.
    """
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.launcher == 'none':
        return
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False)
    if torch_dist.is_initialized() or not start_group:
        return
    if cfg.launcher == 'slurm':
        _export_slurm_rendezvous()
    if cfg.launcher in ('pytorch', 'slurm'):
        torch_dist.init_process_group(backend='gloo')


def _export_slurm_rendezvous() -> None:
    """Set torch's rendezvous variables from Slurm's (as MMEngine's slurm
    launcher does, without its ``torch.cuda.set_device``)."""
    env = os.environ
    env['RANK'] = env['SLURM_PROCID']
    env['WORLD_SIZE'] = env['SLURM_NTASKS']
    env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        env['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1')
