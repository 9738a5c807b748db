# CLIP ViT-B/16 (OpenAI weights) fine-tuned with SDM on CUHK-PEDES, batch 64
# on one GPU as IRRA's baseline. The global batch of 64 is declared: on N
# GPUs add --scale-batch (64 / N per GPU; the SDM over the gathered batch is
# the same objective).
_base_ = [
    '../_base_/models/clip-sdm_vitb16.py',
    '../_base_/datasets/cuhk_pedes.py',
    '../_base_/schedules/adam_60e.py',
    '../_base_/default_runtime.py',
]

auto_scale_lr = dict(base_batch_size=64)
