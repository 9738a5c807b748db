"""The ground floor of gadms: what every other part may use and which uses
no other part of gadms.

- :mod:`~gadms.common.atomic`: every file gadms writes, written atomically;
- :mod:`~gadms.common.formats`: the files' layouts (WebPerson's columns,
  the gallery index, image extensions), one definition each;
- :mod:`~gadms.common.progress`: progress of long loops outside the Runner;
- :mod:`~gadms.common.image_limits`: the decoded-pixel cap;
- :mod:`~gadms.common.checkpoint_compat`: MMEngine checkpoints under
  torch's weights-only loading.

Nothing is imported here, so a Ray worker that needs one module (the pixel
cap) does not load torch with the others.
"""
