from .clip_weights import (load_clip_weights, read_clip_state_dict,
                           resize_pos_embed)
from .open_clip_backbone import DenseTextOutput, OpenCLIPBackbone

__all__ = [
    'OpenCLIPBackbone', 'DenseTextOutput', 'load_clip_weights',
    'read_clip_state_dict', 'resize_pos_embed'
]
