from .base import TextPersonDataset
from .benchmarks import CUHKPEDES, ICFGPEDES, RecordListDataset, RSTPReid
from .samplers import IdentityBalancedSampler, ResumableSampler
from .synth_export import LAYOUT_SPLITS, export_synth_person
from .synth_person import SynthPerson
from .transforms import *  # noqa: F401,F403
from .transforms import LoadPersonImage
from .webperson import WebPerson
from .webperson_parquet import parquet_shards

__all__ = [
    'TextPersonDataset', 'RecordListDataset', 'CUHKPEDES', 'ICFGPEDES',
    'RSTPReid', 'WebPerson', 'parquet_shards', 'SynthPerson',
    'export_synth_person', 'LAYOUT_SPLITS', 'IdentityBalancedSampler',
    'ResumableSampler', 'LoadPersonImage'
]
