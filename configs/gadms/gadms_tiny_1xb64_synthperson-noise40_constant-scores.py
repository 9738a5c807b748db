# Control for gadms_tiny_1xb64_synthperson-noise40.py: every content token gets
# the same score 0.013 (the mean GASS score that run ends with), so both
# masks keep their average rates (p_n ~0.17, p_i ~0.05) but ignore which
# tokens GASS ranks higher.
_base_ = ['./gadms_tiny_1xb64_synthperson-noise40.py']
model = dict(scorer=dict(_delete_=True, type='RandomScorer', value=0.013))
