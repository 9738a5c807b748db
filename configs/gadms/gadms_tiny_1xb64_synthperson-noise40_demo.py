# `make demo`: tiny GA-DMS on noisy SynthPerson (40% of training captions
# with an irrelevant clause, 10% with a wrong colour word), shortened to 12
# epochs so that training, the test and the pictures fit in about 7 minutes
# on 2 CPU cores.
_base_ = ['./gadms_tiny_1xb64_synthperson-noise40.py']
train_cfg = dict(max_epochs=12, val_interval=6)
