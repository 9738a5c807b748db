# IRRA fine-tuning model: SDM + ID + random-15% MLM through the GA-DMS
# decoder, no scorer (method.md 6.2). The fine-tune configs set
# id_head.num_classes and `load_from` (the last pretraining epoch; the ID
# head is new, every other key loads from it).
_base_ = ['./gadms_vitb16.py']

model = dict(
    backbone=dict(pretrained=None),
    scorer=None,
    neck=dict(_delete_=True, type='DualMaskNeck', policy='random',
              random_ratio=0.15),
    mtp_head=dict(loss_weight=1.0),
    id_head=dict(type='IdentityHead', num_classes=11003, loss_weight=1.0),
)
custom_hooks = []
