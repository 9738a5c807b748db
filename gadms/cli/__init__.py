"""The top floor: what the command-line tools share (argument handling,
config loading, ``register_all_modules``, the paper protocol, the dry-run
preflight). Nothing else in gadms imports it.

Loading a config for a tool (:func:`load_config`) prepares the process as
the tools need it: environment variables of the launch, and a gloo group
where a GPU launch falls back to CPUs. Importing this package does none of
that.
"""
from .setup_env import register_all_modules
from .tool_args import (add_cfg_options_arg, add_checkpoint_args,
                        add_common_args, add_data_args, apply_checkpoint_args,
                        apply_data_args, build_runner, load_config,
                        read_config, read_tool_config, set_ann_file,
                        set_data_root)

__all__ = [
    'add_cfg_options_arg', 'add_checkpoint_args', 'apply_checkpoint_args',
    'read_config', 'set_data_root', 'set_ann_file', 'add_data_args',
    'apply_data_args', 'read_tool_config', 'register_all_modules',
    'add_common_args', 'load_config', 'build_runner'
]
