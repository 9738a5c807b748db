"""Estimated GPU-hours and memory of each row of docs/reproduce.md.

Estimates, for planning, until the rows are measured on GPUs:

- FLOPs of one image-caption pair through CLIP ViT-B/16 at 384 x 128
  (193 image tokens, 77 text tokens): per transformer layer of n tokens and
  width d, 24 n d^2 (projections and MLP) + 4 n^2 d (attention), plus the
  patch embedding; a training step costs 3x its forward;
- GA-DMS (and IRRA fine-tuning: a second text view and the decoder) priced
  at the GA-DMS / CLIP-SDM step ratio measured for ViT-B/16 on a CPU
  (docs/benchmarks.md, "Training-step time": 1.29x); the SDM-only
  ablation row at 1x;
- at 40% of an A100's 312 bf16 TFLOPS;
- memory per GPU: weights, gradients and Adam state in fp32 (16 bytes per
  parameter) plus bf16 activations, s h (34 + 5 a s / h) bytes per layer
  and sample (Korthikanti et al., 2022), for the image tower, two text
  views and the 5-layer decoder.

    python benchmarks/reproduce_cost.py
"""
from typing import NamedTuple

A100_BF16_FLOPS = 312e12
UTILISATION = 0.4
GADMS_STEP_RATIO = 1.29  # docs/benchmarks.md, ViT-B/16 on a CPU
PARAMETERS = 195e6  # CLIP ViT-B/16 (150M) + MTP decoder and vocabulary head
GB = 1e9


class Tower(NamedTuple):
    tokens: int
    width: int
    heads: int
    layers: int


IMAGE = Tower(tokens=193, width=768, heads=12, layers=12)
TEXT = Tower(tokens=77, width=512, heads=8, layers=12)
DECODER = Tower(tokens=77, width=512, heads=8, layers=5)


def forward_flops(tower: Tower) -> float:
    n, d = tower.tokens, tower.width
    return tower.layers * (24 * n * d * d + 4 * n * n * d)


def activation_bytes(tower: Tower) -> float:
    s, h, a = tower.tokens, tower.width, tower.heads
    return tower.layers * s * h * (34 + 5 * a * s / h)


def clip_sdm_step_flops() -> float:
    """Forward and backward of one pair (the patch embedding: 192 patches
    of 16 x 16 x 3 pixels into 768 channels)."""
    patches = 192 * 768 * (16 * 16 * 3) * 2
    return 3 * (forward_flops(IMAGE) + forward_flops(TEXT) + patches)


def memory_gb(batch: int) -> float:
    per_sample = (activation_bytes(IMAGE) + 2 * activation_bytes(TEXT) +
                  activation_bytes(DECODER))
    return (16 * PARAMETERS + batch * per_sample) / GB


ROWS = [
    # name, captions per epoch, epochs, step ratio, per-GPU batch, GPUs
    ('pretraining 0.1M (vitb16_webperson-100k.py)', 200_000, 30,
     GADMS_STEP_RATIO, 64, 8),
    ('pretraining 1.0M (vitb16_webperson-1m.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 64, 8),
    ('pretraining 5.0M (vitb16_webperson.py)', 10_005_446, 30,
     GADMS_STEP_RATIO, 64, 8),
    ('released script (vitb16_webperson_coderecipe.py)', 2_000_000, 30,
     GADMS_STEP_RATIO, 128, 8),
    ('ablation rows 2-7 (0.5M)', 1_000_000, 30, GADMS_STEP_RATIO, 64, 8),
    ('ablation row 1 (0.5M, SDM only)', 1_000_000, 30, 1.0, 64, 8),
    ('fine-tuning CUHK-PEDES', 68_126, 60, GADMS_STEP_RATIO, 128, 1),
    ('fine-tuning ICFG-PEDES', 34_674, 60, GADMS_STEP_RATIO, 128, 1),
    ('fine-tuning RSTPReid', 37_010, 60, GADMS_STEP_RATIO, 128, 1),
]


def main() -> None:
    step = clip_sdm_step_flops()
    print(f'CLIP-SDM training FLOPs per pair: {step / 1e9:.0f} GFLOP '
          f'(GA-DMS: {step * GADMS_STEP_RATIO / 1e9:.0f})')
    print('| row | samples (captions x epochs) | GPU-hours (A100, est.) | '
          'hours on its GPUs | memory per GPU (est.) |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, captions, epochs, ratio, batch, gpus in ROWS:
        seconds = captions * epochs * step * ratio / (A100_BF16_FLOPS *
                                                      UTILISATION)
        hours = seconds / 3600
        print(f'| {name} | {captions:,} x {epochs} | {hours:.1f} | '
              f'{hours / gpus:.1f} on {gpus} | '
              f'{memory_gb(batch):.0f} GB at {batch} |')


if __name__ == '__main__':
    main()
