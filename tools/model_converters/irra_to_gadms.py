"""Convert an official GA-DMS or IRRA training checkpoint to gadms.

    python tools/model_converters/irra_to_gadms.py best.pth gadms_best.pth

Renames ``base_model.*`` (CLIP) to ``backbone.clip.*``; ``cross_attn``,
``cross_modal_transformer``, ``ln_pre_t/ln_pre_i/ln_post`` and
``mlm_head.{dense,ln,fc}`` to ``mtp_head.*``; ``classifier`` to
``id_head.classifier``; casts fp16 weights to fp32; prints every key it
leaves out. The result loads with ``tools/test.py CONFIG gadms_best.pth``.
The source is read weights-only unless ``--trust-checkpoint`` is given.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
from gadms.models.utils.irra_checkpoint import (  # noqa: E402
    convert_irra_state_dict, official_state_dict)
from gadms.utils import atomic_torch_save  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='gadms checkpoint to write')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='unpickle everything (trusted files only)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        checkpoint = torch.load(args.src, map_location='cpu',
                                weights_only=not args.trust_checkpoint)
    except Exception as err:  # torch raises several kinds
        raise SystemExit(
            f'cannot read {args.src} weights-only ({type(err).__name__}: '
            f'{(str(err).splitlines() or [""])[0]}); if you trust the '
            'file, pass '
            '--trust-checkpoint') from err
    converted, unmatched = convert_irra_state_dict(
        official_state_dict(checkpoint))
    for key in unmatched:
        print(f'unmatched key left out: {key}')
    atomic_torch_save(dict(state_dict=converted, meta=dict(source=args.src)),
                      args.dst)
    print(f'wrote {len(converted)} tensors to {args.dst} '
          f'({len(unmatched)} unmatched)')


if __name__ == '__main__':
    main()
