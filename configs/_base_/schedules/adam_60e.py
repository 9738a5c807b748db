# IRRA fine-tuning schedule: Adam, 5 warm-up epochs from 0.1x, cosine to 0.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-5, betas=(0.9, 0.999), eps=1e-3,
                   weight_decay=4e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, end=60,
         eta_min=0, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=1)
val_cfg = dict()
test_cfg = dict()
