"""Estimated FLOPs and GPU memory of a training step, from a model config.

Estimates for planning (docs/reproduce.md, "Cost"; the dry run's memory
line), not measurements:

- FLOPs of one image-caption pair: per transformer layer of n tokens and
  width d, ``24 n d^2`` (projections and MLP) + ``4 n^2 d`` (attention),
  plus the patch embedding; a training step costs 3x its forward;
- memory per GPU: weights, gradients and Adam state in fp32 (16 bytes per
  parameter) plus bf16 activations, ``s h (34 + 5 a s / h)`` bytes per
  layer and sample (Korthikanti et al., 2022), for the image tower, each
  text view the model encodes (two for GA-DMS: the noise-masked caption
  and the MTP view) and the MTP decoder.
"""
from typing import List, NamedTuple

import torch

GB = 1e9
# bytes per parameter: fp32 weights, gradients and Adam's two moments
STATE_BYTES = 16


class Tower(NamedTuple):
    """A transformer stack: tokens per sample, width, heads, layers."""
    tokens: int
    width: int
    heads: int
    layers: int


def forward_flops(tower: Tower) -> float:
    n, d = tower.tokens, tower.width
    return tower.layers * (24 * n * d * d + 4 * n * n * d)


def activation_bytes(tower: Tower) -> float:
    s, h, a = tower.tokens, tower.width, tower.heads
    return tower.layers * s * h * (34 + 5 * a * s / h)


def _arch(backbone: dict) -> dict:
    """The open_clip architecture of a backbone config (a name or a
    dict)."""
    arch = backbone['arch']
    if isinstance(arch, str):
        import open_clip
        config = open_clip.get_model_config(arch)
        if config is None:
            raise ValueError(f'unknown open_clip architecture {arch!r}')
        return config
    return dict(arch)


class StepShape(NamedTuple):
    """What one training sample runs through: the image tower, the text
    towers (one per text view) and the decoder, plus the patch embedding's
    multiply-adds."""
    image: Tower
    texts: List[Tower]
    decoder: List[Tower]
    patch_flops: float


def step_shape(model: dict) -> StepShape:
    """The towers of an ``OpenCLIPBackbone`` model config (CLIP-SDM, or
    GA-DMS with its MTP view and decoder)."""
    arch = _arch(model['backbone'])
    vision, text = arch['vision_cfg'], arch['text_cfg']
    height, width = model['backbone'].get('image_size') or (
        vision['image_size'], ) * 2
    patch = vision['patch_size']
    patches = (height // patch) * (width // patch)
    image = Tower(patches + 1, vision['width'],
                  vision['width'] // vision.get('head_width', 64),
                  vision['layers'])
    text_tower = Tower(text.get('context_length', 77), text['width'],
                       text.get('heads', 8), text['layers'])
    mtp = model.get('mtp_head')
    texts = [text_tower] * (2 if mtp else 1)
    # the decoder: its layers and one cross-attention block
    decoder = [Tower(text_tower.tokens, text_tower.width,
                     mtp.get('heads', 8), mtp.get('depth', 4) + 1)] \
        if mtp else []
    return StepShape(image, texts, decoder,
                     patches * vision['width'] * patch * patch * 3 * 2)


def step_flops(shape: StepShape) -> float:
    """Forward and backward FLOPs of one pair through the image tower and
    one text view (CLIP-SDM's step; docs/reproduce.md prices GA-DMS at
    the measured step ratio)."""
    return 3 * (forward_flops(shape.image) + forward_flops(shape.texts[0]) +
                shape.patch_flops)


def memory_gb(shape: StepShape, parameters: float, batch: int) -> float:
    """Estimated GPU memory of a training step of ``batch`` samples per
    GPU, in GB."""
    per_sample = sum(activation_bytes(tower) for tower in
                     [shape.image, *shape.texts, *shape.decoder])
    return (STATE_BYTES * parameters + batch * per_sample) / GB


def count_parameters(model: dict) -> int:
    """Parameters of a model config, built on the meta device (no weights
    drawn, nothing loaded)."""
    from gadms.registry import MODELS
    with torch.device('meta'):
        built = MODELS.build(model)
    return sum(p.numel() for p in built.parameters())
