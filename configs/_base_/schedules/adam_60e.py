# IRRA / GA-DMS fine-tuning schedule: the pretraining schedule's shape
# (5 warm-up epochs from 0.1x, cosine to 0) over 60 epochs at lr 1e-5.
_base_ = ['./adam_30e_pretrain.py']

optim_wrapper = dict(optimizer=dict(lr=1e-5))
train_cfg = dict(max_epochs=60)
