# IRRA / GA-DMS fine-tuning schedule: Adam lr 1e-5 (eps 1e-3, wd 4e-5),
# 60 epochs, per-epoch linear warm-up from 0.1x over 5 epochs, 1.0x at
# epoch 6, then cosine to 0 (same shape as adam_30e_pretrain.py).
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-5, betas=(0.9, 0.999), eps=1e-3,
                   weight_decay=4e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, end_factor=1.0, by_epoch=True,
         begin=0, end=6),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, end=60,
         eta_min=0),
]
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=1)
val_cfg = dict()
test_cfg = dict()
