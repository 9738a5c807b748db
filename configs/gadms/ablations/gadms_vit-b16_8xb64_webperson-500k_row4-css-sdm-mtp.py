# Table 9.4 row 4: CSS scores, noise-masked SDM and score-guided MTP.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
model = dict(
    scorer=dict(_delete_=True, type='CosineScorer', norm_scope='group',
                group_size={{_base_.released_gpu_batch}}))
