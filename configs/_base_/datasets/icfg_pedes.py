# ICFG-PEDES: data/ICFG-PEDES/{ICFG-PEDES.json, imgs/}; no val split, so
# validation runs on the test split (stated in the logs as such).
_base_ = ['./cuhk_pedes.py']

dataset_type = 'ICFGPEDES'
data_root = 'data/ICFG-PEDES'
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='test'))
test_dataloader = val_dataloader
