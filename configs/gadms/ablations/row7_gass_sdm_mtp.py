# Table 9.4 row 7 (full GA-DMS): GASS, noise-masked SDM and MTP.
_base_ = ['./webperson-500k.py']
