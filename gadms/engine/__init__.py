from .checkpoint_loading import CheckpointError, load_model_weights
from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop
from .optim_wrappers import *  # noqa: F401,F403
from .runner import GADMSRunner

__all__ = [
    'ResumableEpochBasedTrainLoop', 'GADMSRunner', 'CheckpointError',
    'load_model_weights'
]
