"""CLIP's image normalisation constants (RGB, on the 0-255 scale)."""
CLIP_MEAN = (122.770938, 116.7460125, 104.09373615)
CLIP_STD = (68.5005327, 66.6321579, 70.32316305)
