# IRRA fine-tuning model: SDM + ID + random-15% MLM through the GA-DMS
# decoder, no scorer (docs/method.md, "Fine-tuning and ablations"). The
# fine-tune configs set id_head.num_classes and `load_from` (the last
# pretraining epoch; the ID head is new, every other key loads from it).
# The backbone starts from the OpenAI weights, which `load_from` then
# replaces; with load_from=None (Table 3's "None" rows: IRRA from CLIP)
# they are the start.
# GPU count: the released GA-DMS fine-tuning script ran on 1 GPU with batch
# 128 (IRRA: 1 GPU, batch 64), so SDM, ID and MLM are means over one batch
# and the balance is SDM 1 : ID 1 : MLM 1. gadms's losses are means over the
# global batch on any number of processes, so 1 process x 128 or N x
# (128 / N) train exactly that objective; N x 128 is a larger batch.
_base_ = ['./gadms_vitb16.py']

model = dict(
    scorer=None,
    neck=dict(_delete_=True, type='DualMaskNeck', policy='random',
              random_ratio=0.15),
    # IRRA's random 15% MLM, logged as loss_mlm
    mtp_head=dict(loss=dict(loss_weight=1.0), loss_name='loss_mlm'),
    id_head=dict(type='IdentityHead', num_classes=11003,
                 loss=dict(type='mmpretrain.CrossEntropyLoss',
                           loss_weight=1.0)),
)
custom_hooks = []
# the ID head is new (a pretraining checkpoint has no id_head.* keys); every
# other key must fit the checkpoint
load_partial = ['id_head.']
