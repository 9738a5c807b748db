"""Key layout of the official IRRA / GA-DMS training checkpoints.

Their model (``model.state_dict()`` under ``'model'``, fp16 weights) holds
the CLIP as ``base_model.*`` and the MLM branch at the top level; gadms
keeps the same modules under ``backbone.clip`` and ``mtp_head`` (whose
layout follows IRRA's), and the ID classifier under ``id_head``.
"""
from typing import Dict, List, Tuple

import torch

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
