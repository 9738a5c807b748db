# The README default: a tiny CLIP trained with SDM on SynthPerson, on CPU.
_base_ = [
    '../_base_/models/clip-sdm_tiny.py',
    '../_base_/datasets/synth_person.py',
    '../_base_/schedules/adam_tiny.py',
    '../_base_/default_runtime.py',
]
