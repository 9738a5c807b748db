from .base import TextPersonDataset
from .benchmarks import CUHKPEDES, ICFGPEDES, RecordListDataset, RSTPReid
from .samplers import IdentityBalancedSampler
from .synth_person import SynthPerson, export_cuhk_pedes_layout
from .transforms import *  # noqa: F401,F403
from .webperson import WebPerson

__all__ = [
    'TextPersonDataset', 'RecordListDataset', 'CUHKPEDES', 'ICFGPEDES',
    'RSTPReid', 'WebPerson', 'SynthPerson', 'export_cuhk_pedes_layout',
    'IdentityBalancedSampler'
]
