"""Tiny CLIP settings shared by the tests."""
TINY_ARCH = dict(
    embed_dim=32,
    vision_cfg=dict(layers=2, width=32, head_width=16, patch_size=8),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                  layers=2))


def tiny_backbone_cfg(image_size=(32, 16), **kwargs) -> dict:
    """Config of an ``OpenCLIPBackbone`` small enough for unit tests."""
    return dict(type='OpenCLIPBackbone', arch=TINY_ARCH,
                image_size=image_size, **kwargs)

# --cfg-options that shrink the configs' tiny CLIP (width 128, 3 + 3
# layers) to width 32 and 2 + 2 layers, for tests that run the tools
SHRINK_OPTIONS = [
    'model.backbone.arch.embed_dim=32',
    'model.backbone.arch.vision_cfg.width=32',
    'model.backbone.arch.vision_cfg.layers=2',
    'model.backbone.arch.vision_cfg.head_width=16',
    'model.backbone.arch.text_cfg.width=32',
    'model.backbone.arch.text_cfg.heads=2',
    'model.backbone.arch.text_cfg.layers=2',
]

# --cfg-options for the SynthPerson tiny configs: a few identities, one
# process, and the smaller CLIP above
SMALL_SYNTH_OPTIONS = [
    f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                     'test_dataloader')
    for key in ('dataset.num_identities.train=16',
                'dataset.num_identities.val=4',
                'dataset.num_identities.test=4', 'batch_size=16',
                'num_workers=0', 'persistent_workers=False')
] + SHRINK_OPTIONS
