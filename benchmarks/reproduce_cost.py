"""Estimated GPU-hours and memory of each row of docs/reproduce.md.

Estimates, for planning, until the rows are measured on GPUs:

- FLOPs and memory of a step from ``gadms.cli.train_cost`` (the
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
from gadms.cli import register_all_modules  # noqa: E402
from gadms.cli.train_cost import (count_parameters, memory_gb,  # noqa
                                  step_flops, step_shape)

A100_BF16_FLOPS = 312e12
UTILISATION = 0.4
GADMS_STEP_RATIO = 1.29  # docs/benchmarks.md, ViT-B/16 on a CPU
PRETRAINING = 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'
FINETUNING = 'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py'


ROWS = [
    # name, captions per epoch, epochs, step ratio, per-GPU batch, GPUs,
    # the config of its model
    ('pretraining 0.1M (gadms_vit-b16_8xb64_webperson-100k.py)', 200_000, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('pretraining 1.0M (gadms_vit-b16_8xb64_webperson-1m.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('pretraining 5.0M (gadms_vit-b16_8xb64_webperson.py)', 10_005_446, 30,
     GADMS_STEP_RATIO, 64, 8, PRETRAINING),
    ('released script (gadms_vit-b16_8xb128_webperson_coderecipe.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 128, 8, PRETRAINING),
    ('ablation rows 2-7 (0.5M)', 1_000_000, 30, GADMS_STEP_RATIO, 64, 8,
     PRETRAINING),
    ('ablation row 1 (0.5M, SDM only)', 1_000_000, 30, 1.0, 64, 8,
     PRETRAINING),
    ('fine-tuning CUHK-PEDES', 68_126, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
    ('fine-tuning ICFG-PEDES', 34_674, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
    ('fine-tuning RSTPReid', 37_010, 60, GADMS_STEP_RATIO, 128, 1,
     FINETUNING),
]
PRETRAININGS = {'0.1M': 'pretraining 0.1M (gadms_vit-b16_8xb64_webperson-100k.py)',
                '1.0M': 'pretraining 1.0M (gadms_vit-b16_8xb64_webperson-1m.py)',
                '5.0M': 'pretraining 5.0M (gadms_vit-b16_8xb64_webperson.py)'}
FINE_TUNINGS = ('fine-tuning CUHK-PEDES', 'fine-tuning ICFG-PEDES',
                'fine-tuning RSTPReid')
# the runs behind each table, as (row, how many times); Table 1 is Table
# 3's diagonal, so the paper needs Table 3's fine-tunings once
TABLES = {
    'Table 2 (direct transfer)': [(PRETRAININGS[s], 1) for s in
                                  ('0.1M', '1.0M', '5.0M')],
    'Table 1 (fine-tuning from 1.0M and 5.0M)': [
        (PRETRAININGS['1.0M'], 1), (PRETRAININGS['5.0M'], 1)] + [
        (row, 2) for row in FINE_TUNINGS],
    'Table 3 (fine-tuning from None, 0.1M, 1.0M, 5.0M)': [
        (PRETRAININGS[s], 1) for s in ('0.1M', '1.0M', '5.0M')] + [
        (row, 4) for row in FINE_TUNINGS],
    'Table 4 (ablation rows 1-7)': [('ablation rows 2-7 (0.5M)', 6),
                                    ('ablation row 1 (0.5M, SDM only)', 1)],
    'the whole paper (Tables 1-4)': [
        (PRETRAININGS[s], 1) for s in ('0.1M', '1.0M', '5.0M')] + [
        (row, 4) for row in FINE_TUNINGS] + [
        ('ablation rows 2-7 (0.5M)', 6),
        ('ablation row 1 (0.5M, SDM only)', 1)],
}


def gpu_hours(step: float) -> dict:
    """Row name -> its estimated A100 GPU-hours."""
    return {name: captions * epochs * step * ratio /
            (A100_BF16_FLOPS * UTILISATION) / 3600
            for name, captions, epochs, ratio, _, _, _ in ROWS}


def main() -> None:
    register_all_modules()
    models = {path: Config.fromfile(path).model
              for path in (PRETRAINING, FINETUNING)}
    shapes = {path: step_shape(model) for path, model in models.items()}
    parameters = {path: count_parameters(model)
                  for path, model in models.items()}
    step = step_flops(shapes[PRETRAINING])
    hours = gpu_hours(step)
    print(f'CLIP-SDM training FLOPs per pair: {step / 1e9:.0f} GFLOP '
          f'(GA-DMS: {step * GADMS_STEP_RATIO / 1e9:.0f})')
    print('| row | samples (captions x epochs) | GPU-hours (A100, est.) | '
          'hours on its GPUs | memory per GPU (est.) |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, captions, epochs, _, batch, gpus, config in ROWS:
        memory = memory_gb(shapes[config], parameters[config], batch)
        print(f'| {name} | {captions:,} x {epochs} | {hours[name]:.1f} | '
              f'{hours[name] / gpus:.1f} on {gpus} | {memory:.0f} GB at '
              f'{batch} |')
    print()
    print('| table | runs | GPU-hours (A100, est.) |')
    print('| --- | ---: | ---: |')
    for table, runs in TABLES.items():
        total = sum(hours[row] * times for row, times in runs)
        print(f'| {table} | {sum(t for _, t in runs)} | {total:.1f} |')


if __name__ == '__main__':
    main()
