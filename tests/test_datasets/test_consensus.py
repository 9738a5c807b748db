"""Caption consensus (issue #35): the attribute lexicon, the consensus
value of each colour word against its group, ConsensusTokens on CLIP
tokens, and the datasets' caption groups."""
import os.path as osp

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gadms.datasets import (CUHKPEDES, SynthPerson, WebPerson,
                            export_synth_person)
from gadms.datasets.attribute_lexicon import (AttributeLexicon, Statement,
                                              consensus_spans)
from gadms.datasets.transforms import ConsensusTokens, get_tokenizer

TOKENIZER = get_tokenizer(77)
LEXICON = dict(
    colours=dict(grey=['grey', 'gray'], navy=['dark blue', 'navy'],
                 blue=['blue'], black=['black'], red=['red'],
                 light=['light-coloured']),
    garments=dict(upper=['jacket', 'coat', 'top'],
                  lower=['trousers', 'pants', 'jeans'],
                  headwear=['hat']),
    max_gap=3)
# a group of three captions of one person
GROUP = ['A man in a gray coat and dark blue pants.',
         'The man wears a grey jacket with black trousers.',
         'He has a red hat. His jacket is grey, he is in red.']


def _span(caption: str, word: str, start: int = 0) -> tuple:
    first = caption.index(word, start)
    return first, first + len(word)


def test_statements_read_synonyms_multi_word_colours_and_garments():
    lexicon = AttributeLexicon.build(LEXICON)
    first, second, third = GROUP
    assert lexicon.statements(first) == [
        Statement('grey', 'upper', *_span(first, 'gray')),
        Statement('navy', 'lower', *_span(first, 'dark blue'))]
    assert lexicon.statements(second) == [
        Statement('grey', 'upper', *_span(second, 'grey')),
        Statement('black', 'lower', *_span(second, 'black'))]
    # a colour after its garment ('jacket is grey'), and one with no
    # garment near it in its sentence ('in red': the hat is in another)
    assert lexicon.statements(third) == [
        Statement('red', 'headwear', *_span(third, 'red')),
        Statement('grey', 'upper', *_span(third, 'grey')),
        Statement('red', None, *_span(third, 'red', 10))]
    # hyphen and space spell one form; case does not matter; a colour
    # too far from any garment describes none
    assert lexicon.statements('LIGHT coloured top')[0][:2] == ('light',
                                                                'upper')
    assert lexicon.statements('red and very very old jeans')[0][1] is None
    assert lexicon.statements('red, very old jeans')[0][1] == 'lower'
    # sentences end statements: no garment from the next sentence, no
    # colour spelled across a full stop
    assert lexicon.statements('a woman in red. A coat.')[0][1] is None
    caption = 'It was dark. Blue pants.'
    assert lexicon.statements(caption) == [
        Statement('blue', 'lower', *_span(caption, 'Blue'))]


def test_consensus_values_by_hand():
    """grey/gray on the jacket/coat: both others agree (1). navy pants
    against black trousers: the one other caption that states the lower
    garment disagrees (0), and so does black against navy. The red hat:
    no other caption states a hat (neutral). A colour with no garment:
    neutral. Identity of a group of four with a 2-1 split: 2/3, 1/3."""
    values = consensus_spans(GROUP, AttributeLexicon.build(LEXICON),
                             neutral=0.4)
    first, second, third = GROUP
    assert values == [
        [(*_span(first, 'gray'), 1.0), (*_span(first, 'dark blue'), 0.0)],
        [(*_span(second, 'grey'), 1.0), (*_span(second, 'black'), 0.0)],
        [(*_span(third, 'red'), 0.4), (*_span(third, 'grey'), 1.0),
         (*_span(third, 'red', 10), 0.4)]]
    split = ['a red coat', 'a red jacket', 'a blue top', 'a red top and '
             'a blue jacket']
    values = consensus_spans(split, AttributeLexicon.build(LEXICON))
    # the fourth caption states two colours of the upper garment: it
    # agrees with either
    assert [v[-1] for v in values[0]] == [pytest.approx(2 / 3)]
    assert [v[-1] for v in values[2]] == [pytest.approx(1 / 3)]
    assert [v[-1] for v in values[3]] == [pytest.approx(2 / 3),
                                          pytest.approx(1 / 3)]


def test_consensus_tokens_place_values_on_clip_tokens():
    transform = ConsensusTokens(lexicon=LEXICON, neutral=0.4)
    caption = GROUP[0]
    results = transform(dict(captions=[caption], group_captions=GROUP,
                             group_index=0, img_path='x.png'))
    row = results['token_consensus']
    assert row.shape == (1, 77) and row.dtype == np.float32
    words = [('a', 1), ('man', 1), ('in', 1), ('a', 1), ('gray', 1),
             ('coat', 1), ('and', 1), ('dark', 0), ('blue', 0),
             ('pants', 1), ('.', 1)]
    expected = np.zeros(77, dtype=np.float32)
    expected[1:1 + len(words)] = [value for _, value in words]
    assert [TOKENIZER.encode(w) for w, _ in words] == [
        [i] for i in TOKENIZER.encode(caption)]  # one token per word
    np.testing.assert_array_equal(row[0], expected)


def test_consensus_tokens_need_a_group_that_holds_the_caption():
    transform = ConsensusTokens(lexicon=LEXICON)
    with pytest.raises(ValueError, match=r"x.png, caption 1: "
                       r"ConsensusTokens needs the caption's group"):
        transform(dict(captions=['a red coat'], img_path='x.png',
                       caption_idx=1))
    with pytest.raises(ValueError, match='group_index 1 does not point to '
                       "the sample's caption 'a red coat'"):
        transform(dict(captions=['a red coat'], group_captions=GROUP,
                       group_index=1, img_path='x.png'))


def test_a_lexicon_form_with_two_meanings_is_refused():
    with pytest.raises(ValueError, match="the colours form 'navy' names "
                       "both 'navy' and 'blue'"):
        AttributeLexicon.build(dict(colours=dict(navy=['navy'],
                                                 blue=['blue', 'navy']),
                                    garments=dict(upper=['coat'])))
    with pytest.raises(ValueError, match='both a colour and a garment'):
        AttributeLexicon.build(dict(colours=dict(tan=['tan']),
                                    garments=dict(upper=['tan'])))
    with pytest.raises(ValueError, match=r"unknown keys \['colors'\]"):
        AttributeLexicon.build(dict(colors={}, garments={}))


SYNTH = dict(num_identities=dict(train=3, val=1, test=1),
             images_per_identity=2, captions_per_image=2, seed=3)


def test_image_and_identity_groups_of_a_training_set():
    """Each sample's group: its image's captions, or every caption of its
    identity in record order; group_index is its own position there."""
    records = SynthPerson(split='train', test_mode=True, **SYNTH)
    by_image = [records.get_data_info(i) for i in range(len(records))]
    for groups in ('image', 'identity'):
        dataset = SynthPerson(split='train', caption_groups=groups, **SYNTH)
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            image = by_image[info['image_id']]
            if groups == 'image':
                expected = image['captions']
            else:
                expected = [c for r in by_image if r['pid'] == info['pid']
                            for c in r['captions']]
            assert info['group_captions'] == expected
            assert expected[info['group_index']] == info['captions'][0]
        sizes = {len(g) for g in dataset.group_captions}
        assert sizes == ({2} if groups == 'image' else {4})
    plain = SynthPerson(split='train', **SYNTH).get_data_info(0)
    assert 'group_captions' not in plain
    with pytest.raises(ValueError, match="caption_groups must be one of"):
        SynthPerson(split='train', caption_groups='person', **SYNTH)


def test_benchmark_reader_groups_captions_by_identity(tmp_path):
    export_synth_person(str(tmp_path), 'cuhk-pedes', **SYNTH)
    dataset = CUHKPEDES(data_root=str(tmp_path), split='train',
                        caption_groups='identity')
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        same = [dataset.get_data_info(i)['captions'][0]
                for i in range(len(dataset))
                if dataset.get_data_info(i)['pid'] == info['pid']]
        assert sorted(info['group_captions']) == sorted(same)
        assert info['group_captions'][info['group_index']] == \
            info['captions'][0]
    transform = ConsensusTokens(lexicon=LEXICON)
    assert transform(dataset.get_data_info(0))['token_consensus'].shape == (
        1, 77)


def test_webperson_groups_come_from_the_row(tmp_path):
    pq.write_table(pa.table(dict(
        image=[dict(bytes=b'x', path=f'{i}.png') for i in range(2)],
        image_path=[f'{i}.png' for i in range(2)],
        caption1=['a red coat', 'a man'], caption2=['a blue coat',
                                                    'a woman'])),
        osp.join(tmp_path, 'shard.parquet'))
    for groups, identity in (('image', 'image'), ('identity', 'image'),
                             ('image', 'caption')):
        dataset = WebPerson(data_root=str(tmp_path), ann_file='shard.parquet',
                            caption_groups=groups, identity=identity)
        info = dataset.get_data_info(1)
        assert info['group_captions'] == ['a red coat', 'a blue coat']
        assert info['group_index'] == 1
    alone = WebPerson(data_root=str(tmp_path), ann_file='shard.parquet',
                      caption_groups='identity', identity='caption')
    assert alone.get_data_info(1)['group_captions'] == ['a blue coat']
    assert alone.get_data_info(1)['group_index'] == 0
