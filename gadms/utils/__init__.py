from .atomic import atomic_torch_save
from .setup_env import register_all_modules
from .tool_args import (add_cfg_options_arg, add_checkpoint_args,
                        add_common_args, apply_checkpoint_args, build_runner,
                        load_config, read_config, set_data_root)

__all__ = [
    'add_cfg_options_arg', 'add_checkpoint_args', 'apply_checkpoint_args',
    'read_config', 'set_data_root',
    'register_all_modules', 'add_common_args', 'load_config', 'build_runner',
    'atomic_torch_save'
]
