# Tiny GA-DMS on clean SynthPerson (CPU).
_base_ = [
    '../_base_/models/gadms_tiny.py',
    '../_base_/datasets/synth_person.py',
    '../_base_/schedules/adam_tiny.py',
    '../_base_/default_runtime.py',
]
