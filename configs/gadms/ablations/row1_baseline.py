# method.md table 9.4 row 1: SDM on clean captions, no scorer, no MTP.
# All rows pretrain on a 0.5M-image WebPerson subset and report direct
# transfer; point the dataset at that subset's annotation file.
_base_ = ['../vitb16_webperson.py']
model = dict(
    scorer=None,
    neck=dict(_delete_=True, type='DualMaskNeck', policy='off'),
    mtp_head=None)
custom_hooks = []
