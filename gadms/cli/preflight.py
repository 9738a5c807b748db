"""What a training launch would do, checked before it uses a GPU.

``tools/train.py --dry-run`` prints :func:`preflight`'s summary: the
process count, the per-process and global batch, the learning rate after
any scaling, the weights it would load (and whether each file exists), the
data folders it would read, and the estimated memory per GPU
(``gadms.cli.train_cost``), with a warning above the card's memory. It
exits non-zero when something the run needs is missing.

A recipe that must not start from random weights says so with
``weights_required = True``: a run of it without any weights to load
(``model.backbone.pretrained`` and ``load_from`` both None) is refused
unless ``--from-scratch`` asks for random weights explicitly
(:func:`check_weights`, also before a real run).
"""
import glob
import os.path as osp
from typing import List, NamedTuple, Optional, Tuple

from mmengine.config import Config

from gadms.registry import DATASETS
from .train_cost import count_parameters, memory_gb, step_shape

# when the card is unknown (no CUDA here), the memory it is checked against
DEFAULT_CARD_GB = 40.0


class Preflight(NamedTuple):
    """The summary's ``(label, value)`` rows, the problems that stop the
    run and the warnings that do not."""
    rows: List[Tuple[str, str]]
    problems: List[str]
    warnings: List[str]

    def text(self) -> str:
        width = max(len(label) for label, _ in self.rows)
        lines = ['dry run: what this launch would train'] + [
            f'  {label:<{width}}  {value}' for label, value in self.rows]
        lines += [f'WARNING: {w}' for w in self.warnings]
        lines += [f'MISSING: {p}' for p in self.problems]
        lines.append('dry run: ' + ('FAILED, the run would stop' if
                                    self.problems else 'OK'))
        return '\n'.join(lines)


def weights_to_load(cfg: Config) -> List[Tuple[str, str]]:
    """``(option, file)`` of each weights file the run would read."""
    found = []
    if cfg.get('load_from'):
        found.append(('resume from' if cfg.get('resume') else 'load_from',
                      cfg.load_from))
    pretrained = cfg.model.get('backbone', {}).get('pretrained')
    if pretrained:
        found.append(('model.backbone.pretrained', pretrained))
    return found


def check_weights(cfg: Config) -> List[str]:
    """The weights problems that stop a run: a file that does not exist,
    or no weights at all in a recipe with ``weights_required``."""
    problems = [f'{option}: {path} does not exist (docs/reproduce.md, '
                '"Downloads", says where each file comes from)'
                for option, path in weights_to_load(cfg)
                if not osp.isfile(path)]
    resuming_latest = cfg.get('resume') and not cfg.get('load_from')
    if (cfg.get('weights_required') and not weights_to_load(cfg)
            and not resuming_latest):
        problems.append(
            'this recipe starts from pretrained weights (weights_required), '
            'but model.backbone.pretrained and load_from are both None: set '
            'one, or pass --from-scratch to train from random weights')
    return problems


def start_from_scratch(cfg: Config) -> None:
    """``--from-scratch``: no backbone weights and no checkpoint, asked
    for explicitly (so ``weights_required`` no longer applies)."""
    cfg.weights_required = False
    cfg.load_from = None
    if cfg.model.get('backbone') is not None:
        cfg.model.backbone.pretrained = None


def _datasets(cfg: Config) -> List[Tuple[str, dict]]:
    """``(loader, dataset config)`` of every dataset of the three loaders
    (a ``ConcatDataset``'s parts one by one)."""
    found = []
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if not loader:
            continue
        dataset = loader['dataset']
        found += [(name, part) for part in dataset.get('datasets',
                                                       [dataset])]
    return found


def _annotation(dataset: dict) -> Optional[str]:
    """The annotation file (or shard folder / glob) a dataset reads."""
    ann_file = dataset.get('ann_file')
    if ann_file is None:
        ann_file = getattr(DATASETS.get(dataset['type']), 'ANN_FILE', None)
    if ann_file is None:
        return None
    return osp.join(dataset['data_root'], ann_file)


def check_data(cfg: Config) -> Tuple[List[str], List[str]]:
    """The data rows of the summary and the data that is missing."""
    rows, problems = [], []
    for loader, dataset in _datasets(cfg):
        kind = dataset.get('type', '?')
        if 'data_root' not in dataset:
            rows.append(f'{loader}: {kind} (generated, no files)')
            continue
        annotation = _annotation(dataset)
        where = annotation or dataset['data_root']
        present = bool(glob.glob(where)) if annotation else osp.isdir(where)
        rows.append(f'{loader}: {kind} {where} '
                    f'({"found" if present else "MISSING"})')
        if not present:
            problems.append(f'{loader}: {kind} reads {where}, which does not '
                            'exist')
    return rows, problems


def effective_lr(cfg: Config, world_size: int) -> str:
    """The optimizer's learning rate as the run would use it: scaled by
    the actual / declared global batch when ``auto_scale_lr`` is on."""
    lr = cfg.optim_wrapper.get('optimizer', {}).get('lr')
    if lr is None:
        return 'set by the optimizer wrapper'
    scaling = cfg.get('auto_scale_lr') or {}
    if not scaling.get('enable'):
        return f'{lr:g}'
    actual = world_size * cfg.train_dataloader.batch_size
    factor = actual / scaling['base_batch_size']
    return f'{lr * factor:g} ({lr:g} x {actual}/{scaling["base_batch_size"]}'\
        ', --auto-scale-lr)'


def memory_line(cfg: Config, card_gb: Optional[float]
                ) -> Tuple[str, List[str]]:
    """The estimated memory per GPU, and a warning when it exceeds the
    card (``card_gb``; ``DEFAULT_CARD_GB`` when the card is unknown)."""
    backbone = cfg.model.get('backbone', {})
    if backbone.get('type') != 'OpenCLIPBackbone':
        return 'not estimated (not an OpenCLIPBackbone model)', []
    batch = cfg.train_dataloader.batch_size
    estimate = memory_gb(step_shape(cfg.model), count_parameters(cfg.model),
                         batch)
    shown = f'{estimate:.0f}' if estimate >= 10 else f'{estimate:.1f}'
    line = f'about {shown} GB per GPU at batch {batch} ' \
        '(estimate: weights, Adam state and bf16 activations)'
    limit = card_gb or DEFAULT_CARD_GB
    if estimate <= limit:
        return line, []
    card = f'this card holds ({card_gb:g} GB)' if card_gb else \
        f'a {DEFAULT_CARD_GB:g} GB card holds (--gpu-memory GB checks ' \
        'against yours)'
    return line, [f'about {estimate:.0f} GB per GPU at batch {batch}: more '
                  f'than {card}; launch more processes, or keep the batch '
                  'per process with --auto-scale-lr']


def preflight(cfg: Config, world_size: int,
              card_gb: Optional[float] = None) -> Preflight:
    """The dry run's summary of ``cfg`` (global batch already fitted) on
    ``world_size`` processes."""
    batch = cfg.train_dataloader.batch_size
    rows = [('processes', f'{world_size} (launcher: {cfg.launcher})'),
            ('batch', f'{batch} per process, {batch * world_size} global'),
            ('learning rate', effective_lr(cfg, world_size))]
    problems = check_weights(cfg)
    weights = weights_to_load(cfg)
    for option, path in weights or [('weights', None)]:
        rows.append((option, 'none: random initialisation' if path is None
                     else f'{path} ({"found" if osp.isfile(path) else "MISSING"})'))
    data_rows, data_problems = check_data(cfg)
    rows += [('data', row) for row in data_rows]
    problems += data_problems
    memory, warnings = memory_line(cfg, card_gb)
    if world_size > 1 and cfg.launcher == 'none':
        warnings.append(f'{world_size} processes announced (WORLD_SIZE or '
                        'SLURM_NTASKS) but --launcher none: each process '
                        'would train alone (tools/dist_train.sh and '
                        'slurm_train.sh pass the launcher)')
    rows.append(('memory', memory))
    rows.append(('work dir', cfg.work_dir))
    return Preflight(rows, problems, warnings)
