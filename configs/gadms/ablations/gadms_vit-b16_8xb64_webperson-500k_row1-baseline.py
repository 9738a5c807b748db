# method.md table 9.4 row 1: SDM on clean captions, no scorer, no MTP.
# Every row trains on the 0.5M-image subset of
# gadms_vit-b16_8xb64_webperson-500k.py and
# reports direct transfer.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
model = dict(
    scorer=None,
    neck=dict(_delete_=True, type='DualMaskNeck', policy='off'),
    mtp_head=None)
custom_hooks = []
