# GA-DMS pretraining as the released code trained it (run_ddp.sh, build.py,
# webreid.py): the 1M file, 8 GPUs x 128 = 1024 global, lr 1e-5, beta 0.3,
# and, unlike gadms_vit-b16_8xb64_webperson.py,
# - GASS with the code's formula (attn_norm='code': the EOT attention
#   divided by the sum of the raw gradient scores, method.md 3.2 step 7);
# - per-GPU score banks: a caption reads what its group of 128 captions
#   last wrote for it (the initial 0.85 when it was scored elsewhere);
# with the released 8-GPU objective of gadms_vit-b16_8xb64_webperson.py over groups of
# 128. Not emulated (docs/method.md): the pure-fp16 weights and scorer, the
# identical augmentation seed on every rank, DistributedSampler padding.
#   tools/dist_train.sh configs/gadms/gadms_vit-b16_8xb128_webperson_coderecipe.py 8
_base_ = ['./gadms_vit-b16_8xb64_webperson-1m.py']

released_gpu_batch = 128
auto_scale_lr = dict(base_batch_size=8 * released_gpu_batch)
model = dict(
    scorer=dict(attn_norm='code', group_size=released_gpu_batch),
    mtp_head=dict(loss=dict(loss_weight=0.3,
                            group_size=released_gpu_batch)))
# one identity per image, as webreid.py gives it (the pid is taken once per
# image, before the caption loop): the base's default identity='image'
train_dataloader = dict(batch_size=released_gpu_batch)
optim_wrapper = dict(optimizer=dict(lr=1e-5))
custom_hooks = [
    dict(type='ScoreBankHook', context_length=77, mode='per_group',
         group_size=released_gpu_batch)
]
