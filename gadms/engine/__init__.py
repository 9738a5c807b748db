from .checkpoint_compat import allow_mmengine_checkpoint_globals
from .hooks import *  # noqa: F401,F403
from .optim_wrappers import *  # noqa: F401,F403

__all__ = ['allow_mmengine_checkpoint_globals']
