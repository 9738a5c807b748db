# GA-DMS pretraining with the released script's values: lr 1e-5, 128 per
# GPU x 8 = 1024 global (launch on 8 GPUs), beta 0.3, the code's attention
# normalisation. The released-DDP objective of vitb16_webperson.py with the
# script's per-GPU batch of 128 (score normalisation and MTP mean over
# groups of 128, SDM x 1/8).
_base_ = ['./vitb16_webperson.py']

released_gpu_batch = 128
model = dict(
    scorer=dict(attn_norm='code', group_size=released_gpu_batch),
    mtp_head=dict(loss=dict(loss_weight=0.3,
                            group_size=released_gpu_batch)))
train_dataloader = dict(batch_size=released_gpu_batch)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
