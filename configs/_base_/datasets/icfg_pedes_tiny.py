# ICFG-PEDES layout at the tiny models' input size (see cuhk_pedes_tiny.py);
# no val split, so validation runs on the test split.
_base_ = ['./cuhk_pedes_tiny.py']

dataset_type = 'ICFGPEDES'
data_root = 'data/ICFG-PEDES'
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='test'))
test_dataloader = val_dataloader
