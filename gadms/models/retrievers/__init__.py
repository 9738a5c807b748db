from .clip_sdm import CLIPSDM

__all__ = ['CLIPSDM']
