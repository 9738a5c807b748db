# GA-DMS pretraining with the released script's values: lr 1e-5, 128 per
# GPU x 8 = 1024 global (launch on 8 GPUs), beta 0.3, the code's attention
# normalisation.
_base_ = ['./vitb16_webperson.py']

model = dict(
    scorer=dict(attn_norm='code'),
    mtp_head=dict(loss_weight=0.3))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
