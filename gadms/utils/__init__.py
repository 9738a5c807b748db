from ..checkpoint_compat import allow_mmengine_checkpoint_globals
from .atomic import atomic_torch_save
from .setup_env import register_all_modules
from .tool_args import (add_cfg_options_arg, add_checkpoint_args,
                        add_common_args, add_data_args, apply_checkpoint_args,
                        apply_data_args, build_runner, load_config,
                        read_config, read_tool_config, set_ann_file,
                        set_data_root)

# the tools' entry point: MMEngine checkpoints load under torch >= 2.6
# (gadms/checkpoint_compat.py; gadms.engine does the same)
allow_mmengine_checkpoint_globals()

__all__ = [
    'add_cfg_options_arg', 'add_checkpoint_args', 'apply_checkpoint_args',
    'read_config', 'set_data_root', 'set_ann_file', 'add_data_args',
    'apply_data_args', 'read_tool_config',
    'register_all_modules', 'add_common_args', 'load_config', 'build_runner',
    'atomic_torch_save'
]
