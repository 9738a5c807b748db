# Fine-tune a GA-DMS pretraining checkpoint on CUHK-PEDES
# (../_base_/finetune_vitb16_1xb128.py: the recipe and the starting point).
_base_ = [
    '../_base_/finetune_vitb16_1xb128.py',
    '../_base_/datasets/cuhk_pedes.py',
]
model = dict(id_head=dict(num_classes=11003))
train_dataloader = dict(batch_size=128)
