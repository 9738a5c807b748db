"""The evaluation protocol behind the paper's numbers, as one switch.

The released code (method.md 6.1, 6.2, 8) selected models on the
benchmarks' **test** splits and fine-tuned from the pretraining checkpoint
that was best on the CUHK-PEDES test split (``best0.pth``) for every
benchmark. gadms's default protocol selects on the val splits and
fine-tunes from the last pretraining epoch (docs/method.md, "gadms and the
released code"). ``tools/train.py --paper-protocol`` applies
:func:`apply_paper_protocol`, which changes the config so that

- validation runs on the config's test splits;
- the best checkpoint is kept per benchmark (``best_<benchmark>_t2i_R1_*``,
  the released ``best0/1/2.pth``), or on ``t2i/R1`` for one benchmark;
- a fine-tuning config (one with an ``id_head``) starts from the
  ``best_CUHK-PEDES_t2i_R1_epoch_*.pth`` of the pretraining run's work dir,
  which a pretraining run under this protocol writes: the folder of the
  config's own ``load_from``, or the folder the command line gives as
  ``load_from`` (ending with ``/``). A checkpoint *file* named on the
  command line is never replaced.

The training recipes themselves (batch, learning rate, the released DDP
objective) are the configs'; the protocol changes only selection.
"""
import copy
import glob
import os.path as osp
from typing import List

from mmengine.config import Config

from gadms.registry import DATASETS

SELECTION_METRIC = 't2i/R1'
# the benchmark whose best pretraining checkpoint the released fine-tuning
# script started from, for every benchmark (best0.pth)
FINETUNE_FROM_BEST_ON = 'CUHK-PEDES'


def apply_paper_protocol(cfg: Config, keep_load_from: bool = False
                         ) -> Config:
    """Change ``cfg`` in place to the paper's protocol (module docstring);
    returns it. ``keep_load_from``: the command line named ``load_from``
    (a file given so is kept; a folder is searched).

    Raises:
        ValueError: the config has no test dataloader to select on.
        FileNotFoundError: a fine-tuning config whose pretraining work dir
            holds no best CUHK-PEDES checkpoint.
    """
    if not cfg.get('test_dataloader'):
        raise ValueError('--paper-protocol selects models on the test '
                         'splits, and this config has no test_dataloader')
    cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_evaluator = copy.deepcopy(cfg.test_evaluator)
    cfg.val_cfg = cfg.get('val_cfg') or dict()
    names = benchmark_names(cfg.test_dataloader.dataset)
    cfg.default_hooks.checkpoint.save_best = [
        f'{name}/{SELECTION_METRIC}' for name in names
    ] if len(names) > 1 else SELECTION_METRIC
    cfg.default_hooks.checkpoint.rule = 'greater'
    if cfg.model.get('id_head') and cfg.get('load_from'):
        cfg.load_from = finetuning_start(cfg.load_from, keep_load_from)
    return cfg


def finetuning_start(load_from: str, named: bool) -> str:
    """The checkpoint a fine-tuning starts from under the protocol: a file
    ``named`` on the command line as it is; else the best CUHK-PEDES
    checkpoint of the folder ``load_from`` is (ends with ``/``) or is in."""
    is_folder = load_from.endswith('/') or osp.isdir(load_from)
    if named and not is_folder:
        return load_from
    return best_pretraining_checkpoint(
        load_from if is_folder else osp.dirname(load_from))


def benchmark_names(dataset: dict) -> List[str]:
    """The ``NAME`` of each dataset of a dataset config (a
    ``ConcatDataset``'s parts in order): the metric prefixes of a run."""
    parts = dataset.get('datasets', [dataset])
    return [DATASETS.get(part['type']).NAME for part in parts]


def best_pretraining_checkpoint(work_dir: str) -> str:
    """The best-on-CUHK-PEDES checkpoint of a pretraining run's work dir
    (the newest if several).

    Raises:
        FileNotFoundError: there is none.
    """
    pattern = osp.join(work_dir, 'best_{}_{}_epoch_*.pth'.format(
        FINETUNE_FROM_BEST_ON, SELECTION_METRIC.replace('/', '_')))
    found = sorted(glob.glob(pattern), key=osp.getmtime)
    if not found:
        raise FileNotFoundError(
            f'--paper-protocol fine-tunes from the pretraining checkpoint '
            f'best on {FINETUNE_FROM_BEST_ON}, and {pattern} matches '
            'nothing: pretrain with --paper-protocol, or name the '
            'checkpoint file to start from (--cfg-options load_from=FILE)')
    return found[-1]
