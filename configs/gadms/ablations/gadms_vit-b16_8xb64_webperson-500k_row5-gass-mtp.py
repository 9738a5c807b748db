# Table 9.4 row 5: GASS scores, score-guided MTP, no noise masking.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
# SDM on the clean caption: no noise mask, none forced either
model = dict(neck=dict(noise_alpha=0.0, force_one_noise=False))
