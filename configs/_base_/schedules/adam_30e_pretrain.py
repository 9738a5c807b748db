# GA-DMS pretraining schedule (paper): Adam eps 1e-3, wd 4e-5, lr 1e-4,
# 30 epochs; per-epoch factors 0.10, 0.28, 0.46, 0.64, 0.82 (linear warm-up
# from 0.1x), 1.00 at epoch 6, then cosine to ~0.004x at the last epoch
# (method.md appendix B). The two schedulers overlap on epoch 6 by design:
# MMEngine chains them, so the cosine starts from the warmed-up value. The
# cosine has no `end`: the Runner ends it at train_cfg.max_epochs.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), eps=1e-3,
                   weight_decay=4e-5))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, end_factor=1.0, by_epoch=True,
         begin=0, end=6),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, eta_min=0),
]
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()
