# Fine-tune a GA-DMS pretraining checkpoint on ICFG-PEDES (IRRA recipe with the
# GA-DMS script values: batch 128 on one GPU, lr 1e-5, 60 epochs; the global
# batch of 128 is declared: on N GPUs add --scale-batch, see
# irra_finetune_vitb16.py).
_base_ = [
    '../_base_/models/irra_finetune_vitb16.py',
    '../_base_/datasets/icfg_pedes.py',
    '../_base_/schedules/adam_60e.py',
    '../_base_/default_runtime.py',
]
model = dict(id_head=dict(num_classes=3102))
train_dataloader = dict(batch_size=128)
auto_scale_lr = dict(base_batch_size=128)
load_from = 'work_dirs/gadms_vit-b16_8xb64_webperson/epoch_30.pth'
