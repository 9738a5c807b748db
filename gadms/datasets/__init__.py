from .base import TextPersonDataset
from .cuhk_pedes import CUHKPEDES
from .synth_person import SynthPerson, export_cuhk_pedes_layout
from .transforms import *  # noqa: F401,F403

__all__ = [
    'TextPersonDataset', 'CUHKPEDES', 'SynthPerson',
    'export_cuhk_pedes_layout'
]
