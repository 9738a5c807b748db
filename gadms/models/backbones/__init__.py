from .base import BaseCLIPBackbone
from .clip_weights import (load_clip_weights, read_clip_state_dict,
                           resize_pos_embed)
from .dense_text import DenseTextOutput
from .open_clip_backbone import OpenCLIPBackbone
from .transformers_clip_backbone import TransformersCLIPBackbone

__all__ = [
    'BaseCLIPBackbone', 'OpenCLIPBackbone', 'TransformersCLIPBackbone',
    'DenseTextOutput', 'load_clip_weights', 'read_clip_state_dict',
    'resize_pos_embed'
]
