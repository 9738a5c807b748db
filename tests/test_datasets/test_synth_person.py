import numpy as np
import pytest

from gadms.datasets import SynthPerson
from gadms.datasets.synth.attributes import COLOURS, PersonAttributes
from gadms.datasets.synth.captions import NOISE_CLAUSES
from gadms.datasets.transforms import get_tokenizer, token_values
from gadms.datasets.synth.render import render_person

SMALL = dict(num_identities=dict(train=6, val=2, test=3),
             images_per_identity=3, seed=7)


def test_train_has_one_sample_per_caption():
    dataset = SynthPerson(split='train', **SMALL)
    assert len(dataset) == 6 * 3 * 2
    info = dataset.get_data_info(0)
    assert len(info['captions']) == 1
    assert info['img'].shape == (128, 48, 3) and info['img'].dtype == np.uint8
    assert {dataset.get_data_info(i)['pid']
            for i in range(len(dataset))} == set(range(6))


def test_test_split_has_one_sample_per_image_and_disjoint_ids():
    test = SynthPerson(split='test', **SMALL)
    val = SynthPerson(split='val', **SMALL)
    assert len(test) == 3 * 3
    assert all(len(test.get_data_info(i)['captions']) == 2
               for i in range(len(test)))
    test_ids = {test.get_data_info(i)['pid'] for i in range(len(test))}
    val_ids = {val.get_data_info(i)['pid'] for i in range(len(val))}
    assert test_ids == {8, 9, 10} and val_ids == {6, 7}


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = SynthPerson(split='test', **SMALL).get_data_info(4)
    b = SynthPerson(split='test', **SMALL).get_data_info(4)
    c = SynthPerson(split='test', **dict(SMALL, seed=8)).get_data_info(4)
    assert a['captions'] == b['captions']
    assert (a['img'] == b['img']).all()
    assert a['captions'] != c['captions'] or (a['img'] != c['img']).any()


def test_captions_describe_the_identity_and_photos_vary():
    dataset = SynthPerson(split='test', **SMALL)
    infos = [dataset.get_data_info(i) for i in range(3)]  # one identity
    attrs = infos[0]['attributes']
    assert len({info['pid'] for info in infos}) == 1
    for info in infos:
        assert info['attributes'] == attrs
        for caption in info['captions']:
            assert f'{attrs["upper_colour"]} ' in caption
            assert f'{attrs["lower_colour"]} ' in caption
        assert info['captions'][0] != info['captions'][1]
    assert not (infos[0]['img'] == infos[1]['img']).all()


def _nearest_colour_names(pixels_bgr: np.ndarray) -> np.ndarray:
    palette = np.array(list(COLOURS.values()), dtype=float)
    rgb = pixels_bgr[..., ::-1].reshape(-1, 3).astype(float)
    nearest = np.linalg.norm(rgb[:, None] - palette[None], axis=-1).argmin(1)
    return np.array(list(COLOURS))[nearest]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_clothing_colour_is_what_changes_in_the_picture(seed):
    """Same photo, only the upper colour differs: the changed pixels are a
    real part of the image and show red in one and blue in the other."""
    info = SynthPerson(split='train', **SMALL).get_data_info(0)
    attrs = dict(info['attributes'], upper_pattern='plain')
    red, blue = (render_person(
        PersonAttributes(**dict(attrs, upper_colour=colour)),
        np.random.default_rng(seed)) for colour in ('red', 'blue'))
    changed = np.abs(red.astype(int) - blue.astype(int)).max(-1) > 40
    assert changed.mean() > 0.05
    for image, colour in ((red, 'red'), (blue, 'blue')):
        names, counts = np.unique(
            _nearest_colour_names(image[changed]), return_counts=True)
        assert names[counts.argmax()] == colour


def test_caption_noise_rates():
    clean = SynthPerson(split='train', **SMALL)
    noisy = SynthPerson(
        split='train', noise_rate=1.0, wrong_attribute_rate=1.0, **SMALL)
    for i in range(len(clean)):
        clean_info, noisy_info = clean.get_data_info(i), noisy.get_data_info(i)
        assert clean_info['caption_noise'] == [[], []]
        caption = noisy_info['captions'][0]
        assert any(clause in caption for clause in NOISE_CLAUSES)
        assert noisy_info['caption_noise'][0] == ['clause', 'wrong_word']
    with pytest.raises(ValueError, match='noise_rate'):
        SynthPerson(split='train', noise_rate=1.5, **SMALL)


def test_noise_spans_mark_the_clause_and_the_wrong_word():
    """The spans point at exactly the injected clause and the replaced
    colour word (the only word that differs from the clean caption), and
    placed on CLIP's tokens they zero exactly those words' pieces."""
    clean = SynthPerson(split='train', **SMALL)
    noisy = SynthPerson(
        split='train', noise_rate=1.0, wrong_attribute_rate=1.0, **SMALL)
    tokenizer = get_tokenizer(77)
    for i in range(0, len(clean), 2):  # caption 0 of each image
        caption = noisy.get_data_info(i)['captions'][0]
        spans = noisy.get_data_info(i)['caption_annotations'][0][
            'noise_spans']
        (c_start, c_end), (w_start, w_end) = spans
        assert caption[c_start:c_end] in NOISE_CLAUSES
        wrong = caption[w_start:w_end]
        assert wrong in COLOURS
        without_clause = (caption[:c_start] + caption[c_end:]).split()
        differing = [(a, b) for a, b in zip(
            without_clause, clean.get_data_info(i)['captions'][0].split())
            if a != b]
        assert len(differing) == 1 and differing[0][0].strip('.,') == wrong
        values = token_values(caption, dict(noise_spans=spans), tokenizer)
        ids = tokenizer([caption])[0]
        zeroed = tokenizer.decode([ids[p] for p in range(1, 76)
                                   if values[p] == 0 and ids[p]])
        marked = sorted([(c_start, caption[c_start:c_end]),
                         (w_start, wrong)])
        assert zeroed.replace(' ', '') == ''.join(
            text for _, text in marked).lower().replace(' ', '')
    assert clean.get_data_info(0)['caption_annotations'] == [
        dict(noise_spans=[]), dict(noise_spans=[])]


def test_dropped_captions_take_their_annotations_along():
    dataset = SynthPerson(split='train', **SMALL)
    spans = [dict(noise_spans=[[0, k + 1]]) for k in range(3)]
    kept = dataset.drop_empty_captions([dict(
        img_path='a.png', captions=['a man', '&nbsp;', 'a red coat'],
        caption_annotations=spans)])
    assert kept[0]['captions'] == ['a man', 'a red coat']
    assert kept[0]['caption_annotations'] == [spans[0], spans[2]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        SynthPerson(split='dev', **SMALL)
    with pytest.raises(ValueError, match='lacks splits'):
        SynthPerson(split='train', num_identities=dict(train=2))
