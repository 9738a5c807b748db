# GA-DMS on CLIP ViT-B/16 at 384x128 (method.md sections 2-4): GASS over the
# last 8 text layers (single-head re-run), dual masking, IRRA MTP decoder.
_base_ = ['./clip-sdm_vitb16.py']

model = dict(
    type='GADMS',
    scorer=dict(
        type='GradAttnScorer', num_layers=8, heads=1, scales=(1, 2),
        attn_norm='paper', norm_scope='batch'),
    neck=dict(
        type='DualMaskNeck', policy='score', noise_alpha=0.2, info_alpha=0.3,
        lam=20.0, noise_gamma=0.9, info_gamma=0.1, noise_replace='bert',
        force_one_noise=False, force_one_mtp=True),
    mtp_head=dict(type='MTPHead', depth=4, heads=8,
                  loss=dict(type='MaskedTokenLoss', loss_weight=0.4)),
    score_init=0.85,
)
custom_hooks = [dict(type='ScoreBankHook', context_length=77)]
