import numpy as np
import pytest

from gadms.datasets.transforms import (EOT_TOKEN_ID, MASK_TOKEN_ID,
                                       SOT_TOKEN_ID, VOCAB_SIZE, CLIPTokenizer,
                                       PackTextPersonInputs, TokenizeCaption,
                                       get_tokenizer)


@pytest.fixture(scope='module')
def tokenizer() -> CLIPTokenizer:
    return get_tokenizer(77)


def test_sot_eot_and_padding(tokenizer):
    ids = tokenizer(['a woman in a red jacket'])[0]
    words = tokenizer.encode('a woman in a red jacket')
    assert len(words) == 6
    assert ids[0] == SOT_TOKEN_ID
    assert list(ids[1:7]) == words
    assert ids[7] == EOT_TOKEN_ID
    assert (ids[8:] == 0).all()
    assert ids.argmax() == 7  # EOT pooling finds the EOT position


def test_truncation_keeps_eot_last(tokenizer):
    ids = tokenizer(['red ' * 200])[0]
    assert ids.shape == (77, )
    assert ids[0] == SOT_TOKEN_ID and ids[-1] == EOT_TOKEN_ID
    assert (ids[1:-1] == tokenizer.encode('red')[0]).all()
    # exactly full: 75 words + SOT + EOT fits without truncation
    exact = tokenizer(['red ' * 75])[0]
    assert exact[-1] == EOT_TOKEN_ID and exact[-2] == exact[1]


def test_short_context():
    ids = CLIPTokenizer(context_length=4)(['one two three four'])[0]
    assert list(ids) == [SOT_TOKEN_ID] + CLIPTokenizer(4).encode('one two') + [
        EOT_TOKEN_ID
    ]
    with pytest.raises(ValueError, match='context_length'):
        CLIPTokenizer(context_length=1)


def test_ids_fit_clip_vocabulary_and_special_order(tokenizer):
    assert MASK_TOKEN_ID < SOT_TOKEN_ID < EOT_TOKEN_ID < VOCAB_SIZE
    assert tokenizer.decode([SOT_TOKEN_ID, MASK_TOKEN_ID, EOT_TOKEN_ID]) == \
        '[MASK]'


def test_mask_id_never_produced_by_any_vocabulary_word(tokenizer):
    """Every BPE symbol, spelled as text, tokenises without id 49405."""
    words = [
        token[:-len('</w>')] for token in tokenizer._bpe.encoder
        if token.endswith('</w>')
    ]
    byte_decoder = tokenizer._bpe.byte_decoder
    text = ' '.join(
        bytearray(byte_decoder[c] for c in word).decode('utf-8', 'ignore')
        for word in words)
    ids = tokenizer.encode(text)
    assert len(ids) > 30000
    assert MASK_TOKEN_ID not in ids
    assert max(ids) < MASK_TOKEN_ID


def test_freed_word_still_encodes(tokenizer):
    """The word of the dropped merge ('jekyll') is spelled in pieces."""
    ids = tokenizer.encode('jekyll')
    assert MASK_TOKEN_ID not in ids and len(ids) >= 2
    assert tokenizer.decode(ids) == 'jekyll'


def test_tokenize_caption_transform():
    results = TokenizeCaption(context_length=77)(
        dict(captions=['a man', 'a woman in red']))
    assert results['text_ids'].shape == (2, 77)
    assert results['text_ids'].dtype == np.int64
    with pytest.raises(ValueError, match='captions'):
        TokenizeCaption()(dict(captions='not a list', img_path='x.jpg'))
    with pytest.raises(ValueError, match='x.jpg'):
        TokenizeCaption()(dict(captions=[], img_path='x.jpg'))


def test_pack_inputs():
    img = np.random.randint(0, 255, (8, 4, 3), dtype=np.uint8)
    packed = PackTextPersonInputs()(
        dict(img=img, pid=3, text_ids=np.ones((2, 77), dtype=np.int64),
             image_id=5, img_path='a.png', captions=['x', 'y']))
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.shape == (3, 8, 4)
    assert (inputs.permute(1, 2, 0).numpy() == img).all()
    assert sample.pid == 3 and sample.image_id == 5
    assert sample.text_ids.shape == (2, 77) and sample.num_captions == 2
    with pytest.raises(ValueError, match='b.png'):
        PackTextPersonInputs()(
            dict(img=img[..., 0], pid=0, text_ids=np.ones((1, 77)),
                 img_path='b.png'))
