# SynthPerson: procedurally drawn pedestrians, the embedded default data.
dataset_type = 'SynthPerson'
image_size = (96, 32)  # (height, width)
synth_cfg = dict(
    num_identities=dict(train=200, val=50, test=50),
    images_per_identity=4,
    captions_per_image=2,
    image_size=(128, 48),
    noise_rate=0.0,
    seed=0)

# SynthPerson draws the image itself, so there is no LoadPersonImage.
train_pipeline = [
    dict(type='Resize', scale=image_size[::-1], keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandomCrop', crop_size=image_size, padding=4),
    dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='const',
         fill_color=(104, 117, 123)),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]
test_pipeline = [
    dict(type='Resize', scale=image_size[::-1], keep_ratio=False),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    # DefaultSampler's order; can resume in the middle of an epoch
    sampler=dict(type='ResumableSampler', shuffle=True),
    drop_last=True,
    dataset=dict(
        type=dataset_type, split='train', pipeline=train_pipeline,
        **synth_cfg),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, split='val', pipeline=test_pipeline, **synth_cfg),
)
val_evaluator = dict(type='TextPersonRetrievalMetric')

test_dataloader = dict(
    val_dataloader, dataset=dict(val_dataloader['dataset'], split='test'))
test_evaluator = val_evaluator
