# CLIP ViT-B/16 (OpenAI weights) fine-tuned with SDM on CUHK-PEDES, batch 64
# on one GPU as IRRA's baseline (on N GPUs use batch_size=64 // N: the SDM
# over the gathered batch is the same objective).
_base_ = [
    '../_base_/models/clip-sdm_vitb16.py',
    '../_base_/datasets/cuhk_pedes.py',
    '../_base_/schedules/adam_60e.py',
    '../_base_/default_runtime.py',
]
