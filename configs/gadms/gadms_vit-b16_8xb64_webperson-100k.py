# The paper's recipe (gadms_vit-b16_8xb64_webperson.py) on WebPerson 0.1M (Tables 2-3,
# "WebPerson 0.1M"). How the paper drew its 0.1M images is not stated
# (method.md 6.1): here 100,000 images of the 1M scale, uniformly at random
# with seed 0 (the same images on every run).
_base_ = ['./gadms_vit-b16_8xb64_webperson-1m.py']

train_dataloader = dict(
    dataset=dict(subset=dict(num_images=100_000, seed=0)))
