# CUHK-PEDES layout at the tiny CPU models' input size (96 x 32) with
# CPU-sized loaders: try a real benchmark folder (or one written by
# tools/dataset_converters/synth_person_to_benchmark.py) in minutes.
_base_ = ['./cuhk_pedes.py']

image_size = (96, 32)  # (height, width)
# the base's pipelines (built at its 384 x 128 when it is read) at this
# size, with a smaller crop padding and less erasing for the small images
train_pipeline = [
    dict(step, **{
        'Resize': dict(scale=image_size[::-1]),
        'mmpretrain.RandomCrop': dict(crop_size=image_size, padding=4),
        'NormalisedRandomErasing': dict(erase_prob=0.25),
    }.get(step['type'], {})) for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, **{'Resize': dict(scale=image_size[::-1])}.get(
        step['type'], {})) for step in _base_.test_pipeline
]
train_dataloader = dict(batch_size=64, num_workers=1,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, num_workers=1,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=64, num_workers=1,
                       dataset=dict(pipeline=test_pipeline))
