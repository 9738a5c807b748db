"""Stage 2 data: three direct-transfer test sets in benchmark layouts.

Each set holds other SynthPerson identities (its own seed) written in one
benchmark's published layout and read back by that benchmark's reader;
the captions are clean but styled differently per set, as the three real
benchmarks' captions differ: CUHK-PEDES as written, ICFG-PEDES one long
lower-case sentence with every detail, RSTPReid its first two sentences.
"""
import json
import os.path as osp
import re
from typing import Callable, Dict, List

from gadms.datasets.synth_export import export_synth_person

# layout, reader, annotation file, seed, caption style
TEST_SETS = {
    'CUHKPEDES': ('cuhk-pedes', 'reid_raw.json', 11),
    'ICFGPEDES': ('icfg-pedes', 'ICFG-PEDES.json', 12),
    'RSTPReid': ('rstpreid', 'data_captions.json', 13),
}


def _sentences(caption: str) -> List[str]:
    return re.split(r'(?<=\.) ', caption)


def _icfg_style(caption: str) -> str:
    parts = [s.rstrip('.') for s in _sentences(caption)]
    return ', '.join(p[0].lower() + p[1:] for p in parts) + '.'


def _rstp_style(caption: str) -> str:
    return ' '.join(_sentences(caption)[:2])


STYLES: Dict[str, Callable[[str], str]] = {
    'CUHKPEDES': lambda caption: caption,
    'ICFGPEDES': _icfg_style,
    'RSTPReid': _rstp_style,
}


def write_test_sets(out_dir: str, identities: int) -> Dict[str, str]:
    """Write the three test sets under ``out_dir``; returns reader type ->
    data root."""
    roots = {}
    for kind, (layout, ann_name, seed) in TEST_SETS.items():
        root = osp.join(out_dir, kind)
        export_synth_person(
            root, layout, splits=['test'], seed=seed,
            num_identities=dict(train=0, val=0, test=identities))
        path = osp.join(root, ann_name)
        with open(path, encoding='utf-8') as f:
            records = json.load(f)
        for record in records:
            record['captions'] = [STYLES[kind](c) for c in record['captions']]
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(records, f)
        roots[kind] = root
    return roots


def test_dataloader(roots: Dict[str, str], pipeline: list) -> dict:
    """The ConcatDataset test loader over the three sets (one table)."""
    return dict(
        batch_size=64,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            _delete_=True,
            type='ConcatDataset',
            datasets=[
                dict(type=kind, data_root=root, split='test',
                     pipeline=pipeline) for kind, root in roots.items()
            ]))
