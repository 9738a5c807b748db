# GA-DMS on the tiny random CLIP of clip-sdm_tiny.py (3 text layers).
_base_ = ['./clip-sdm_tiny.py']

model = dict(
    type='GADMS',
    scorer=dict(
        type='GradAttnScorer', num_layers=2, heads=1, scales=(1, 2),
        attn_norm='paper', norm_scope='batch'),
    neck=dict(
        type='DualMaskNeck', policy='score', noise_alpha=0.2, info_alpha=0.3,
        lam=20.0, noise_gamma=0.9, info_gamma=0.1),
    mtp_head=dict(type='MTPHead', depth=2, heads=4, loss_weight=0.4),
    score_init=0.85,
)
custom_hooks = [dict(type='ScoreBankHook', context_length=77)]
