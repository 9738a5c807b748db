"""gadms: text-based person retrieval (GA-DMS and baselines) on MMEngine.

Importing the package is cheap; the parts load when used (``gadms.engine``,
``gadms.models`` ..., or through the registries from a config).
"""
from .version import __version__

__all__ = ['__version__']
