# CLIP ViT-B/16 at 384x128 with the SDM loss (tau = 0.02).
model = dict(
    type='CLIPSDM',
    backbone=dict(
        type='OpenCLIPBackbone',
        arch='ViT-B-16-quickgelu',
        image_size=(384, 128),
        # OpenAI's ViT-B-16.pt (TorchScript archive) or any CLIP state dict
        pretrained='checkpoints/ViT-B-16.pt'),
    loss=dict(type='SDMLoss', temperature=0.02),
    data_preprocessor=dict(type='TextPersonDataPreprocessor'),
)
# every ViT-B/16 recipe starts from the OpenAI weights (or a checkpoint in
# load_from): a run that would start from random weights is refused unless
# --from-scratch asks for it (gadms/cli/preflight.py)
weights_required = True
