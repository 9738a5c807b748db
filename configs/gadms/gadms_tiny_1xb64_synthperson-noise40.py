# Tiny GA-DMS on SynthPerson whose training captions are 40% noisy (an
# irrelevant clause) with 10% wrong colour words; val/test captions clean.
_base_ = [
    '../_base_/models/gadms_tiny.py',
    '../_base_/datasets/synth_person.py',
    '../_base_/schedules/adam_tiny.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(
    dataset=dict(noise_rate=0.4, wrong_attribute_rate=0.1))
