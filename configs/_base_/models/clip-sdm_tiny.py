# A tiny randomly initialised CLIP for CPU runs and tests.
model = dict(
    type='CLIPSDM',
    backbone=dict(
        type='OpenCLIPBackbone',
        arch=dict(
            embed_dim=128,
            vision_cfg=dict(
                layers=3, width=128, head_width=32, patch_size=8,
                mlp_ratio=2.0),
            text_cfg=dict(
                context_length=77, vocab_size=49408, width=128, heads=4,
                layers=3, mlp_ratio=2.0)),
        image_size=(96, 32)),
    # From random weights all features start nearly parallel (cosine
    # ~0.94); at GA-DMS's tau = 0.02 SDM then barely moves them, so the tiny
    # model uses 0.05 (docs/configs.md).
    loss=dict(type='SDMLoss', temperature=0.05),
    data_preprocessor=dict(type='TextPersonDataPreprocessor'),
)
