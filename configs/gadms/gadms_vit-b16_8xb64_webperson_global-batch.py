# gadms's corrected variant of the paper recipe: L = L_sdm + beta * L_mtp
# over the global batch exactly as the paper writes it (SDM at full weight,
# MTP averaged over every masked token), token scores min-max normalised
# over the global batch, no forced mask in the SDM view. The objective does
# not depend on the GPU count; it is not what produced the paper's tables
# (gadms_vit-b16_8xb64_webperson.py is).
_base_ = ['./gadms_vit-b16_8xb64_webperson.py']

model = dict(
    loss=dict(loss_weight=1.0),
    scorer=dict(norm_scope='batch', group_size=None),
    neck=dict(force_one_noise=False),
    mtp_head=dict(loss=dict(norm_scope='batch', group_size=None)))
