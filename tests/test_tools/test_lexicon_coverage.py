"""tools/analysis_tools/lexicon_coverage.py on hand-written captions in the
CUHK-PEDES layout, against counts made by hand."""
import json

import pytest
from common import run_tool_main

from gadms.datasets import export_synth_person

TOOL = 'tools/analysis_tools/lexicon_coverage.py'
CAPTIONS = [['a man in a red coat and black boots.', 'a person walking.'],
            ['a woman in a green dress.', 'she is in blue.']]
LEXICON = """attribute_lexicon = dict(
    colours=dict(red=['red'], black=['black'], green=['green'],
                 blue=['blue']),
    garments=dict(upper=['coat'], lower=['pants']))
"""


@pytest.fixture
def config(tmp_path) -> str:
    root = tmp_path / 'data'
    ann_file = export_synth_person(
        str(root), 'cuhk-pedes', splits=['train'], num_identities=dict(
            train=2, val=0, test=0), images_per_identity=1)
    with open(ann_file) as f:
        records = json.load(f)
    for record, captions in zip(records, CAPTIONS):
        record['captions'] = captions
    with open(ann_file, 'w') as f:
        json.dump(records, f)
    (tmp_path / 'lexicon.py').write_text(LEXICON)
    path = tmp_path / 'config.py'
    path.write_text(f"train_dataloader = dict(dataset=dict(type='CUHKPEDES',"
                    f" data_root={str(root)!r}, split='train'))\n")
    return str(path)


def test_counts_by_hand(config, tmp_path, capsys):
    """'red coat' describes the upper garment; 'black boots' too (boots are
    not in the lexicon, and the coat is one word before); 'green dress'
    and 'in blue.' describe none: their next words are the candidates."""
    out = tmp_path / 'counts.json'
    run_tool_main(TOOL, config, '--lexicon', str(tmp_path / 'lexicon.py'),
                  '--out', str(out))
    counts = json.loads(out.read_text())
    assert counts == dict(captions=4, with_statement=3, colour_words=4,
                          attached=2, garments=dict(upper=2),
                          unattached_next={'dress': 1, '(end)': 1})
    printed = capsys.readouterr().out
    assert 'describing a garment' in printed and '2 (50.0%)' in printed


def test_a_config_without_a_lexicon_is_refused(config):
    with pytest.raises(SystemExit, match='defines no attribute_lexicon'):
        run_tool_main(TOOL, config)
