"""gadms: text-based person retrieval (GA-DMS and baselines) on MMEngine.

Importing the package is cheap; the parts load when used (``gadms.engine``,
``gadms.models`` ..., or through the registries from a config).
"""
from .checkpoint_compat import allow_mmengine_checkpoint_globals
from .version import __version__

# MMEngine 0.10.7 loads its own checkpoints with torch.load's default, which
# is weights_only=True from torch 2.6 on; allow the objects it writes.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__']
