from .atomic import atomic_torch_save
from .setup_env import register_all_modules
from .tool_args import (add_checkpoint_args, add_common_args,
                        apply_checkpoint_args, build_runner, load_config)

__all__ = [
    'add_checkpoint_args', 'apply_checkpoint_args',
    'register_all_modules', 'add_common_args', 'load_config', 'build_runner',
    'atomic_torch_save'
]
