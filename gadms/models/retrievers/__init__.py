from .clip_sdm import CLIPSDM
from .gadms import GADMS

__all__ = ['CLIPSDM', 'GADMS']
