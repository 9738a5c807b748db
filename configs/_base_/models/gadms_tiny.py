# GA-DMS on the tiny random CLIP of clip-sdm_tiny.py (3 text layers). The
# neck keeps the paper's thresholds (DualMaskNeck's defaults, spelled out
# in gadms_vitb16.py); only the sizes differ.
_base_ = ['./clip-sdm_tiny.py']

model = dict(
    type='GADMS',
    scorer=dict(type='GradAttnScorer', num_layers=2),
    neck=dict(type='DualMaskNeck'),
    mtp_head=dict(type='MTPHead', depth=2, heads=4,
                  loss=dict(type='MaskedTokenLoss', loss_weight=0.4)),
)
custom_hooks = [dict(type='ScoreBankHook', context_length=77)]
