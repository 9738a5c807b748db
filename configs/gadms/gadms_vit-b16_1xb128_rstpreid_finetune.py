# Fine-tune a GA-DMS pretraining checkpoint on RSTPReid
# (../_base_/finetune_vitb16_1xb128.py: the recipe and the starting point).
_base_ = [
    '../_base_/finetune_vitb16_1xb128.py',
    '../_base_/datasets/rstpreid.py',
]
model = dict(id_head=dict(num_classes=3701))
train_dataloader = dict(batch_size=128)
