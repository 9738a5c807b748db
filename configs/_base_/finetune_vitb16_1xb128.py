# Fine-tune a GA-DMS pretraining checkpoint on a benchmark (IRRA recipe with
# the GA-DMS script values: batch 128 on one GPU, lr 1e-5, 60 epochs; the
# global batch of 128 is declared: on N GPUs add --scale-batch, see
# models/irra_finetune_vitb16.py). A benchmark's config adds its dataset,
# its identity count and the batch.
_base_ = [
    './models/irra_finetune_vitb16.py',
    './schedules/adam_60e.py',
    './default_runtime.py',
]
auto_scale_lr = dict(base_batch_size=128)
load_from = 'work_dirs/gadms_vit-b16_8xb64_webperson/epoch_30.pth'
