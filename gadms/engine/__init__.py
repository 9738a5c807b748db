from ..checkpoint_compat import allow_mmengine_checkpoint_globals
from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop
from .optim_wrappers import *  # noqa: F401,F403
from .checkpoint_loading import CheckpointError, load_model_weights
from .runner import GADMSRunner

# MMEngine 0.10.7 loads its own checkpoints with torch.load's default, which
# is weights_only=True from torch 2.6 on; allow the objects it writes. Done
# here, where runners and checkpoint loading live, rather than on `import
# gadms`: the corpus stages' Ray workers import gadms without torch.
allow_mmengine_checkpoint_globals()

__all__ = [
    'allow_mmengine_checkpoint_globals', 'ResumableEpochBasedTrainLoop',
    'GADMSRunner', 'CheckpointError', 'load_model_weights'
]
