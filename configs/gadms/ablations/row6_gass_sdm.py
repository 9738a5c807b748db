# Table 9.4 row 6: GASS scores, SDM on the noise-masked caption, no MTP.
_base_ = ['../vitb16_webperson.py']
model = dict(mtp_head=None)
