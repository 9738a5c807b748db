"""Annotations of captions placed on CLIP's BPE tokens (token_values,
AnnotateTokens) and passed through by the WebPerson parquet reader."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gadms.datasets import WebPerson
from gadms.datasets.transforms import (AnnotateTokens, get_tokenizer,
                                       token_values)

TOKENIZER = get_tokenizer(77)


def _pieces(word: str) -> int:
    return len(TOKENIZER.encode(word))


def _expected(words_and_values, length: int = 77) -> np.ndarray:
    """The row built by hand: SOT 0, each word's value on each of its BPE
    pieces (encoded alone), EOT and padding 0."""
    row = [0.0]
    for word, value in words_and_values:
        row += [value] * _pieces(word)
    row = row[:length - 1] + [0.0]
    return np.array(row + [0.0] * (length - len(row)), dtype=np.float32)


def test_multi_piece_words_and_punctuation():
    caption = 'A woman, in a turtleneck and a crossbody bag.'
    assert _pieces('turtleneck') == 3 and _pieces('crossbody') == 2
    start = caption.index('turtleneck')
    values = token_values(caption, dict(noise_spans=[[start, start + 10]]),
                          TOKENIZER)
    np.testing.assert_array_equal(values, _expected([
        ('a', 1), ('woman', 1), (',', 1), ('in', 1), ('a', 1),
        ('turtleneck', 0), ('and', 1), ('a', 1), ('crossbody', 1),
        ('bag', 1), ('.', 1)]))


def test_a_span_touching_part_of_a_word_marks_the_word():
    caption = 'red coat, blue shoes'
    # 'ed c': the end of 'red' and the start of 'coat'; the miniature's
    # [kind, start, end] form
    values = token_values(caption, dict(noise_spans=[['wrong', 1, 5]]),
                          TOKENIZER)
    np.testing.assert_array_equal(values, _expected([
        ('red', 0), ('coat', 0), (',', 1), ('blue', 1), ('shoes', 1)]))


def test_word_confidences_in_caption_order():
    caption = 'a red bag and a red hat, crossbody.'
    values = token_values(caption, dict(word_confidences=[
        ['red', 0.9], ['a', 0.5], ['red', 0.2], ['crossbody.', 0.3]]),
        TOKENIZER)
    # whole words: 'a' is the second article, not the 'a' of 'bag'; a word
    # with punctuation covers its CLIP words
    np.testing.assert_allclose(values, _expected([
        ('a', 1), ('red', 0.9), ('bag', 1), ('and', 1), ('a', 0.5),
        ('red', 0.2), ('hat', 1), (',', 1), ('crossbody', 0.3),
        ('.', 0.3)]))


def test_truncation_at_the_context_length():
    """100 one-piece words: 75 fit between SOT and EOT."""
    caption = ' '.join(['red'] * 100)
    for word, position in ((79, None), (74, 75)):  # 0-based word index
        start = 4 * word
        values = token_values(caption, dict(noise_spans=[[start, start + 3]]),
                              TOKENIZER)
        expected = np.ones(77, dtype=np.float32)
        expected[[0, 76]] = 0  # SOT, EOT
        if position:
            expected[position] = 0
        np.testing.assert_array_equal(values, expected)


def test_no_annotation_is_all_ones_on_content():
    values = token_values('a man', None, TOKENIZER)
    np.testing.assert_array_equal(values, _expected([('a', 1), ('man', 1)]))


@pytest.mark.parametrize('annotation, message', [
    (dict(noise_spans=[[3, 40]]), r'noise span \[3, 40\] is not a \[start, '
     r'end\] range inside the caption \(11 characters\)'),
    (dict(noise_spans=[[5, 2]]), r'noise span \[5, 2\]'),
    (dict(noise_spans=['1-3']), r"noise span '1-3'"),
    (dict(word_confidences=[['coat', 0.5]]),
     r"annotated word 'coat' is not in the caption after character 0"),
    (dict(word_confidences=[['man', 0.5], ['a', 0.5]]),
     r"annotated word 'a' is not in the caption after character 5"),
    (dict(word_confidences=[['man', 1.5]]), r"confidence 1.5 of 'man'"),
    (dict(noise_spans=[[0, 1]], word_confidences=[]),
     r'an annotation has one of'),
    (dict(spans=[[0, 1]]), r"an annotation has one of .*, got keys "
     r"\['spans'\]"),
])
def test_annotations_that_do_not_match_are_refused(annotation, message):
    with pytest.raises(ValueError, match=r'^shard-3 row 7: ' + message):
        token_values('a man walks', annotation, TOKENIZER, 'shard-3 row 7')


def test_text_that_cleaning_changes_is_refused():
    with pytest.raises(ValueError, match="row 2: CLIP's text cleaning"):
        token_values('a man &amp; a dog', dict(noise_spans=[[0, 1]]),
                     TOKENIZER, 'row 2')


def test_transform_picks_the_sample_caption():
    annotations = [dict(noise_spans=[[0, 3]]), dict(noise_spans=[[6, 10]])]
    results = dict(captions=['a man in a red coat'], caption_idx=1,
                   img_path='x.jpg', caption_annotations=annotations)
    np.testing.assert_array_equal(
        AnnotateTokens()(results)['token_annotation'], [_expected([
            ('a', 1), ('man', 1), ('in', 0), ('a', 0), ('red', 1),
            ('coat', 1)])])
    # a test sample: every caption with its own annotation
    results = AnnotateTokens()(dict(
        captions=['red coat', 'a man'], img_path='x.jpg',
        caption_annotations=[dict(noise_spans=[[0, 3]]), None]))
    np.testing.assert_array_equal(results['token_annotation'], [
        _expected([('red', 0), ('coat', 1)]),
        _expected([('a', 1), ('man', 1)])])
    with pytest.raises(ValueError, match='x.jpg, caption 1: noise span'):
        AnnotateTokens()(dict(captions=['red coat'], caption_idx=1,
                              img_path='x.jpg', caption_annotations=[
                                  None, dict(noise_spans=[[6, 10]])]))
    with pytest.raises(ValueError, match='1 caption annotations for 2'):
        AnnotateTokens()(dict(captions=['a', 'b'], img_path='x.jpg',
                              caption_annotations=[None]))


def test_flipped_labels_are_fixed_per_caption_at_the_given_rate():
    captions = [f'a man in a red coat and {k} blue shoes with a black bag'
                for k in range(300)]
    annotations = [dict(noise_spans=[[11, 14]])] * len(captions)  # 'red'
    exact = AnnotateTokens()(dict(
        captions=captions, img_path='x.jpg',
        caption_annotations=annotations))['token_annotation']
    flip = AnnotateTokens(flip_rate=0.3, flip_seed=4)
    flipped = flip(dict(captions=captions, img_path='x.jpg',
                        caption_annotations=annotations))['token_annotation']
    content = np.zeros_like(exact, dtype=bool)
    for row, caption in enumerate(captions):
        content[row, 1:1 + len(TOKENIZER.encode(caption))] = True
    changed = flipped != exact
    # only content tokens change, each to 1 - its value
    assert not changed[~content].any()
    np.testing.assert_array_equal(flipped[changed], 1 - exact[changed])
    rate, trials = changed[content].mean(), content.sum()
    assert abs(rate - 0.3) < 3 * (0.3 * 0.7 / trials)**0.5
    # the same caption gets the same flips in every epoch, another seed
    # others
    again = flip(dict(captions=captions[:1], img_path='x.jpg', caption_idx=0,
                      caption_annotations=annotations[:1]))
    np.testing.assert_array_equal(again['token_annotation'][0], flipped[0])
    other = AnnotateTokens(flip_rate=0.3, flip_seed=5)(dict(
        captions=captions, img_path='x.jpg',
        caption_annotations=annotations))['token_annotation']
    assert (other != flipped).any()
    with pytest.raises(ValueError, match='flip_rate must be in'):
        AnnotateTokens(flip_rate=1.5)


def test_parquet_reader_passes_annotations_through(tmp_path):
    spans = pa.list_(pa.list_(pa.int64()))
    words = pa.list_(pa.struct([('word', pa.string()),
                                ('confidence', pa.float64())]))
    table = pa.table(dict(
        image=[dict(bytes=b'x', path='0.png'), dict(bytes=b'y',
                                                    path='1.png')],
        image_path=['0.png', '1.png'],
        caption1=['a man in red', 'a woman'],
        caption2=['a man', 'a woman in blue'],
        caption1_noise_spans=pa.array([[[9, 12]], None], spans),
        caption2_word_confidences=pa.array(
            [None, [dict(word='blue', confidence=0.25)]], words)))
    pq.write_table(table, str(tmp_path / 'shard.parquet'))
    dataset = WebPerson(data_root=str(tmp_path), ann_file='shard.parquet')
    info = dataset.get_data_info(0)
    assert info['caption_annotations'] == [
        dict(noise_spans=[[9, 12]]), dict()]
    assert dataset.get_data_info(3)['caption_annotations'] == [
        dict(), dict(word_confidences=[['blue', 0.25]])]
    np.testing.assert_array_equal(
        AnnotateTokens()(info)['token_annotation'], [_expected([
            ('a', 1), ('man', 1), ('in', 1), ('red', 0)])])
    np.testing.assert_array_equal(
        AnnotateTokens()(dataset.get_data_info(3))['token_annotation'],
        [_expected([('a', 1), ('woman', 1), ('in', 1), ('blue', 0.25)])])


def test_shards_must_have_the_same_annotation_columns(tmp_path):
    base = dict(image=[dict(bytes=b'x', path='0.png')],
                image_path=['0.png'], caption1=['a man'],
                caption2=['a woman'])
    pq.write_table(pa.table(dict(base, caption1_noise_spans=pa.array(
        [[[0, 1]]], pa.list_(pa.list_(pa.int64()))))),
        str(tmp_path / 'a.parquet'))
    pq.write_table(pa.table(base), str(tmp_path / 'b.parquet'))
    with pytest.raises(ValueError, match=r"b.parquet: annotation columns "
                       r"\[\] differ from \['caption1_noise_spans'\]"):
        WebPerson(data_root=str(tmp_path), ann_file='*.parquet')
