# Tiny GA-DMS (CPU) on a folder in the cuhk-pedes layout; point it at your
# data with --data-root PATH (tools/train.py and tools/test.py).
_base_ = [
    '../_base_/models/gadms_tiny.py',
    '../_base_/datasets/cuhk_pedes_tiny.py',
    '../_base_/schedules/adam_tiny.py',
    '../_base_/default_runtime.py',
]
