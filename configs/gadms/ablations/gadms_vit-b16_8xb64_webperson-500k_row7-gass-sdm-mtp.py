# Table 9.4 row 7 (full GA-DMS): GASS, noise-masked SDM and MTP.
_base_ = ['./gadms_vit-b16_8xb64_webperson-500k.py']
