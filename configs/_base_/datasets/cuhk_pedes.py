# CUHK-PEDES: data/CUHK-PEDES/{reid_raw.json, imgs/}
dataset_type = 'CUHKPEDES'
data_root = 'data/CUHK-PEDES'
image_size = (384, 128)  # (height, width)

# The IRRA / GA-DMS image pipeline (method.md 6.1): PIL's antialiased
# bilinear resize (torchvision's Resize on PIL images), flip, pad 10 + crop,
# and torchvision's RandomErasing as applied after Normalize (the box holds
# CLIP's mean in normalised units; see NormalisedRandomErasing).
train_pipeline = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=image_size[::-1], keep_ratio=False,
         backend='pillow', interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandomCrop', crop_size=image_size, padding=10),
    dict(type='NormalisedRandomErasing', erase_prob=0.5, scale=(0.02, 0.4)),
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

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    # DefaultSampler's order; can resume in the middle of an epoch
    sampler=dict(type='ResumableSampler', shuffle=True),
    drop_last=True,
    dataset=dict(
        type=dataset_type, data_root=data_root, split='train',
        pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split='val',
        pipeline=test_pipeline),
)
val_evaluator = dict(type='TextPersonRetrievalMetric')

test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
test_evaluator = val_evaluator
