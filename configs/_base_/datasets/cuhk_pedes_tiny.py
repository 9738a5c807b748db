# CUHK-PEDES layout at the tiny CPU models' input size (96 x 32) with
# CPU-sized loaders: try a real benchmark folder (or one written by
# tools/dataset_converters/synth_person_to_benchmark.py) in minutes.
# The pipelines are restated because the base's are built from its
# 384 x 128 image size when it is read.
_base_ = ['./cuhk_pedes.py']

image_size = (96, 32)  # (height, width)
train_pipeline = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=image_size[::-1], keep_ratio=False,
         backend='pillow', interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandomCrop', crop_size=image_size, padding=4),
    dict(type='NormalisedRandomErasing', erase_prob=0.25, scale=(0.02, 0.4)),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]
test_pipeline = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=image_size[::-1], keep_ratio=False,
         backend='pillow', interpolation='bilinear'),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]
train_dataloader = dict(batch_size=64, num_workers=1,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, num_workers=1,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=64, num_workers=1,
                       dataset=dict(pipeline=test_pipeline))
