from .dual_mask_neck import DualMaskNeck, MaskedViews

__all__ = ['DualMaskNeck', 'MaskedViews']
