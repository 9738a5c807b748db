# Table 9.4 row 6: GASS scores, SDM on the noise-masked caption, no MTP.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
model = dict(mtp_head=None)
