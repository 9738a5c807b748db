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
from typing import Dict, List, Tuple

import torch

from gadms.common.atomic import atomic_torch_save

# The official model (``model.state_dict()`` under ``'model'``, fp16) holds
# the CLIP as ``base_model.*`` and the MLM branch at the top level; gadms
# keeps the same modules under ``backbone.clip`` and ``mtp_head`` (whose
# layout follows IRRA's), and the ID classifier under ``id_head``.
# (official prefix, gadms prefix), matched at the start of a key
IRRA_TO_GADMS = (
    ('base_model.', 'backbone.clip.'),
    ('cross_attn.', 'mtp_head.cross_attn.'),
    ('cross_modal_transformer.', 'mtp_head.transformer.'),
    ('ln_pre_t.', 'mtp_head.ln_pre_t.'),
    ('ln_pre_i.', 'mtp_head.ln_pre_i.'),
    ('ln_post.', 'mtp_head.ln_post.'),
    ('mlm_head.dense.', 'mtp_head.mlm_head.0.'),
    ('mlm_head.ln.', 'mtp_head.mlm_head.2.'),
    ('mlm_head.fc.', 'mtp_head.mlm_head.3.'),
    ('classifier.', 'id_head.classifier.'),
)


def official_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The model weights of an official checkpoint (``'model'`` entry, a
    ``'state_dict'`` entry or the dict itself; ``module.`` stripped)."""
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise ValueError('expected a dict of tensors, got '
                         f'{type(checkpoint).__name__}')
    return {
        key[len('module.'):] if key.startswith('module.') else key: value
        for key, value in checkpoint.items()
    }


def convert_irra_state_dict(state_dict: Dict[str, torch.Tensor]
                            ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename official keys to gadms keys and cast floats to fp32.

    Returns:
        tuple: the converted state dict and the official keys no rule
        matched (left out).
    """
    converted, unmatched = {}, []
    for key, value in state_dict.items():
        for official, ours in IRRA_TO_GADMS:
            if key.startswith(official):
                converted[ours + key[len(official):]] = (
                    value.float() if value.is_floating_point() else value)
                break
        else:
            unmatched.append(key)
    return converted, unmatched



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
