# RSTPReid layout at the tiny models' input size (see cuhk_pedes_tiny.py).
_base_ = ['./cuhk_pedes_tiny.py']

dataset_type = 'RSTPReid'
data_root = 'data/RSTPReid'
train_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, split='test'))
