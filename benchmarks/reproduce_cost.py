"""Estimated GPU-hours and memory of each row of docs/reproduce.md.

Estimates, for planning, until the rows are measured on GPUs:

- FLOPs and memory of a step from ``gadms.utils.train_cost`` (the
  formulas the dry run of ``tools/train.py`` uses too), for the recipes'
  model configs;
- GA-DMS (and IRRA fine-tuning: a second text view and the decoder) priced
  at the GA-DMS / CLIP-SDM step ratio measured for ViT-B/16 on a CPU
  (docs/benchmarks.md, "Training-step time": 1.29x); the SDM-only
  ablation row at 1x;
- at 40% of an A100's 312 bf16 TFLOPS.

    python benchmarks/reproduce_cost.py
"""
import sys
from os import path as osp

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from gadms.utils import register_all_modules  # noqa: E402
from gadms.utils.train_cost import (count_parameters, memory_gb,  # noqa
                                    step_flops, step_shape)

A100_BF16_FLOPS = 312e12
UTILISATION = 0.4
GADMS_STEP_RATIO = 1.29  # docs/benchmarks.md, ViT-B/16 on a CPU
PRETRAINING = 'configs/gadms/vitb16_webperson.py'
FINETUNING = 'configs/gadms/vitb16_finetune_cuhk-pedes.py'


ROWS = [
    # name, captions per epoch, epochs, step ratio, per-GPU batch, GPUs,
    # the config of its model
    ('pretraining 0.1M (vitb16_webperson-100k.py)', 200_000, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('pretraining 1.0M (vitb16_webperson-1m.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('pretraining 5.0M (vitb16_webperson.py)', 10_005_446, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('released script (vitb16_webperson_coderecipe.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 128, 8, PRETRAINING),
    ('ablation rows 2-7 (0.5M)', 1_000_000, 30, GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('ablation row 1 (0.5M, SDM only)', 1_000_000, 30, 1.0, 64, 8, PRETRAINING),
    ('fine-tuning CUHK-PEDES', 68_126, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
    ('fine-tuning ICFG-PEDES', 34_674, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
    ('fine-tuning RSTPReid', 37_010, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
]


def main() -> None:
    register_all_modules()
    models = {path: Config.fromfile(path).model
              for path in (PRETRAINING, FINETUNING)}
    shapes = {path: step_shape(model) for path, model in models.items()}
    parameters = {path: count_parameters(model)
                  for path, model in models.items()}
    step = step_flops(shapes[PRETRAINING])
    print(f'CLIP-SDM training FLOPs per pair: {step / 1e9:.0f} GFLOP '
          f'(GA-DMS: {step * GADMS_STEP_RATIO / 1e9:.0f})')
    print('| row | samples (captions x epochs) | GPU-hours (A100, est.) | '
          'hours on its GPUs | memory per GPU (est.) |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, captions, epochs, ratio, batch, gpus, config in ROWS:
        seconds = captions * epochs * step * ratio / (A100_BF16_FLOPS *
                                                      UTILISATION)
        hours = seconds / 3600
        memory = memory_gb(shapes[config], parameters[config], batch)
        print(f'| {name} | {captions:,} x {epochs} | {hours:.1f} | '
              f'{hours / gpus:.1f} on {gpus} | {memory:.0f} GB at {batch} |')


if __name__ == '__main__':
    main()
