# The setting of the paper's component ablation (Table 4): the paper recipe
# (../gadms_vit-b16_8xb64_webperson.py) on 0.5M WebPerson images, direct transfer. How
# the paper drew its 0.5M images is not stated (method.md 6.1): here
# 500,000 images of the 5M corpus, uniformly at random with seed 0, the
# same for every row.
_base_ = ['../gadms_vit-b16_8xb64_webperson.py']

train_dataloader = dict(
    dataset=dict(subset=dict(num_images=500_000, seed=0)))
