"""FLOPs and parameters of a retriever's parts, with fvcore.

    python tools/analysis_tools/get_flops.py configs/gadms/gadms_vit-b16_8xb64_webperson.py

Counts one image at the configured input size and one 77-token caption:
the image encoder and the text encoder (what retrieval runs), and the
training-only parts (MTP decoder over a caption, its vocabulary layer per
masked token, ID classifier). fvcore counts one fused multiply-add as one
FLOP. The gradient-attention scorer differentiates through the text
encoder's last layers, which fvcore's tracer cannot follow; its cost is
about one partial text forward plus backward and is left out.
"""
import argparse
import os.path as osp
import warnings
from typing import Callable, List, Tuple

import numpy as np
import torch

with warnings.catch_warnings():
    # fvcore scripts its focal losses with torch.jit on import
    warnings.filterwarnings('ignore', category=FutureWarning,
                            message='`torch.jit.script` is deprecated')
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape

from mmengine.registry import init_default_scope
from terminaltables import AsciiTable
from torch import nn

from gadms.cli import add_cfg_options_arg, read_config
from gadms.registry import MODELS


class _Call(nn.Module):
    """Trace ``function(*inputs)`` of ``owner`` (its parameters count)."""

    def __init__(self, owner: nn.Module, function: Callable) -> None:
        super().__init__()
        self.owner = owner
        self.function = function

    def forward(self, *inputs):
        return self.function(*inputs)


def _sdpa_flops(inputs, outputs) -> int:
    """``softmax(q k^T) v``: two batched matmuls of ``[..., L, d]`` by
    ``[..., d, S]`` and ``[..., L, S]`` by ``[..., S, d]`` (MACs)."""
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    *batch, length, dim = query
    return 2 * int(np.prod(batch)) * length * key[-2] * dim


def _flops(owner: nn.Module, function: Callable, *inputs) -> int:
    analysis = FlopCountAnalysis(_Call(owner, function), inputs)
    analysis.set_op_handle('aten::scaled_dot_product_attention',
                           _sdpa_flops)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(analysis.total())
    costly = {op for op in analysis.unsupported_ops() if 'mm' in op
              or 'attention' in op or 'linear' in op or 'conv' in op}
    if costly:
        raise RuntimeError(f'fvcore cannot count {sorted(costly)}')
    return total


def _params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def measure(model: nn.Module) -> List[Tuple[str, int, int]]:
    """(part, GFLOPs as int FLOPs, parameters) rows."""
    backbone = model.backbone
    clip = backbone.clip
    height, width = backbone.image_size
    image = torch.zeros(1, 3, height, width)
    text = torch.zeros(1, backbone.context_length, dtype=torch.long)
    text[0, 0], text[0, 1:20], text[0, 20] = 49406, 320, 49407
    image_params = _params(clip.visual)
    text_params = _params(clip) - image_params
    rows = [
        ('image encoder', _flops(backbone, backbone.encode_image, image),
         image_params),
        ('text encoder', _flops(backbone, backbone.encode_text, text),
         text_params),
    ]
    mtp = getattr(model, 'mtp_head', None)
    if mtp is not None:
        image_tokens = backbone.encode_image(image).detach()
        text_tokens = backbone.encode_text(text).detach()
        decoder_params = _params(mtp) - _params(mtp.mlm_head)
        rows.append(('MTP decoder (train)',
                     _flops(mtp, mtp.forward, text_tokens, image_tokens),
                     decoder_params))
        rows.append(('MTP vocabulary layer / masked token (train)',
                     _flops(mtp, mtp.mlm_head, text_tokens[0, :1]),
                     _params(mtp.mlm_head)))
    if getattr(model, 'id_head', None) is not None:
        feature = torch.zeros(1, backbone.embed_dim)
        rows.append(('ID classifier (train)',
                     _flops(model.id_head, model.id_head.classifier,
                            feature), _params(model.id_head)))
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    add_cfg_options_arg(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    init_default_scope('gadms')
    cfg = read_config(args.config, args.cfg_options)
    cfg.model.backbone.pretrained = None  # counting needs no weights
    # autograd stays on: nn.MultiheadAttention's inference fast path is a
    # fused op that fvcore cannot count
    model = MODELS.build(cfg.model).eval()
    rows = measure(model)
    height, width = model.backbone.image_size
    table = [['part', 'GFLOPs', 'parameters (M)']]
    table += [[name, f'{flops / 1e9:.3f}', f'{params / 1e6:.2f}']
              for name, flops, params in rows]
    print(AsciiTable(table, title=f'{osp.basename(args.config)} '
                     f'(image {height}x{width}, 77 tokens)').table)
    print('Retrieval cost per image + caption: '
          f'{(rows[0][1] + rows[1][1]) / 1e9:.3f} GFLOPs.')


if __name__ == '__main__':
    main()
