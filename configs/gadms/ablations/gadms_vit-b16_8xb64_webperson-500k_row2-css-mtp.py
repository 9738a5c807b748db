# Table 9.4 row 2: CSS scores, score-guided MTP, no noise masking.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
model = dict(
    scorer=dict(_delete_=True, type='CosineScorer', norm_scope='group',
                group_size={{_base_.released_gpu_batch}}),
    # SDM on the clean caption: no noise mask, none forced either
    neck=dict(noise_alpha=0.0, force_one_noise=False))
