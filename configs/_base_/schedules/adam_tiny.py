# Short schedule for the tiny CPU model: 1 warm-up epoch, then cosine to the
# last epoch (the Runner ends the cosine at train_cfg.max_epochs).
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-4, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=20, val_interval=5)
val_cfg = dict()
test_cfg = dict()
