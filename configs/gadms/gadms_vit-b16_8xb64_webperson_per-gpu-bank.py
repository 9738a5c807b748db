# Ablation: the released code's per-GPU score banks. Each GPU kept its own
# copy and read only the scores it wrote itself; with DistributedSampler
# reshuffling every epoch most captions read stale or initial (0.85) scores
# (method.md 4.3). Here a caption reads what its group of 64 consecutive
# captions of the global batch last wrote, on any number of processes.
# Memory: one fp16 copy of num_captions x 77 per group, i.e. 1.54 GB per
# GPU at 10M captions (154 MB for the 0.5M-image ablation subset).
_base_ = ['./gadms_vit-b16_8xb64_webperson.py']

custom_hooks = [
    dict(type='ScoreBankHook', context_length=77, mode='per_group',
         group_size={{_base_.released_gpu_batch}})
]
