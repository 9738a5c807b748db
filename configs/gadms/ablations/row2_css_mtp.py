# Table 9.4 row 2: CSS scores, score-guided MTP, no noise masking.
_base_ = ['../vitb16_webperson.py']
model = dict(
    scorer=dict(_delete_=True, type='CosineScorer'),
    neck=dict(noise_alpha=0.0))
