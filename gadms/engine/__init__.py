from ..checkpoint_compat import allow_mmengine_checkpoint_globals
from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop
from .optim_wrappers import *  # noqa: F401,F403
from .checkpoint_loading import CheckpointError, load_model_weights
from .runner import GADMSRunner

__all__ = [
    'allow_mmengine_checkpoint_globals', 'ResumableEpochBasedTrainLoop',
    'GADMSRunner', 'CheckpointError', 'load_model_weights'
]
