# The baseline on the noisy SynthPerson of
# configs/gadms/gadms_tiny_1xb64_synthperson-noise40.py, for comparison.
_base_ = ['./clip-sdm_tiny_1xb64_synthperson.py']
train_dataloader = dict(
    dataset=dict(noise_rate=0.4, wrong_attribute_rate=0.1))
