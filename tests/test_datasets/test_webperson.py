"""WebPerson in both published forms, written from SynthPerson."""
import copy
import glob
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from common import REPO_ROOT
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from tiny_models import tiny_backbone_cfg

from gadms.cli import register_all_modules
from gadms.datasets import (IdentityBalancedSampler, LoadPersonImage,
                            SynthPerson, WebPerson, export_synth_person)
from gadms.registry import DATASETS, MODELS

SYNTH = dict(num_identities=dict(train=5, val=1, test=1),
             images_per_identity=2)
NUM_IMAGES = 10


@pytest.fixture(scope='module')
def corpus(tmp_path_factory) -> str:
    """Both forms of one corpus: ``json/`` and ``parquet/`` (3 shards of at
    most 4 rows, row groups of 3)."""
    root = tmp_path_factory.mktemp('webperson')
    export_synth_person(str(root / 'json'), 'webperson-json', **SYNTH)
    export_synth_person(str(root / 'parquet'), 'webperson-parquet',
                        rows_per_shard=4, row_group_size=3, **SYNTH)
    return str(root)


@pytest.fixture(scope='module')
def synth_images() -> list:
    synth = SynthPerson(split='train', test_mode=True, **SYNTH)
    return [synth.get_data_info(i) for i in range(len(synth))]


def _parquet(corpus: str, **kwargs) -> WebPerson:
    return WebPerson(data_root=osp.join(corpus, 'parquet'), ann_file='data',
                     **kwargs)


def test_parquet_shards_two_samples_per_image(corpus, synth_images):
    shards = sorted(glob.glob(osp.join(corpus, 'parquet', 'data', '*')))
    assert [pq.read_metadata(s).num_rows for s in shards] == [4, 4, 2]
    dataset = _parquet(corpus)
    assert len(dataset) == 2 * NUM_IMAGES
    load = LoadPersonImage()
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        image = synth_images[idx // 2]
        assert info['captions'] == [image['captions'][idx % 2]]
        assert info['pid'] == info['image_id'] == idx // 2
        assert info['sample_idx'] == idx
        assert info['img_path'] == image['img_path']
        row = idx // 2
        assert info['source'] == f'{shards[row // 4]} row {row % 4}'
        assert (load(info)['img'] == image['img']).all()
    assert dataset.sample_pids().tolist() == [i // 2 for i in range(20)]


def test_caption_identities_as_in_the_released_code(corpus):
    dataset = _parquet(corpus, identity='caption',
                       subset=dict(num_images=4, seed=1))
    pids = [dataset.get_data_info(i)['pid'] for i in range(len(dataset))]
    assert pids == list(range(8)) == dataset.sample_pids().tolist()
    images = [dataset.get_data_info(i)['image_id'] for i in range(8)]
    assert images == [0, 0, 1, 1, 2, 2, 3, 3]  # still pairs of captions
    with pytest.raises(ValueError, match="identity must be one of.*'pid'"):
        _parquet(corpus, identity='pid')


def test_json_form_matches_parquet_form(corpus):
    from_json = WebPerson(data_root=osp.join(corpus, 'json'))
    from_parquet = _parquet(corpus)
    assert len(from_json) == len(from_parquet)
    for idx in range(len(from_json)):
        a, b = from_json.get_data_info(idx), from_parquet.get_data_info(idx)
        assert a['captions'] == b['captions'] and a['pid'] == b['pid']
        assert a['img_path'] == osp.join(corpus, 'json', 'images',
                                         b['img_path'])


def test_json_form_is_sorted_by_path_with_entry_provenance(tmp_path):
    entries = [{'b/2.jpg': {'caption1': 'second a', 'caption2': 'second b'}},
               {'a/1.jpg': {'caption1': 'first a', 'caption2': 'first b'}}]
    (tmp_path / 'anno.json').write_text(json.dumps(entries))
    dataset = WebPerson(data_root=str(tmp_path), ann_file='anno.json')
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [i['captions'] for i in infos] == [['first a'], ['first b'],
                                              ['second a'], ['second b']]
    assert [i['pid'] for i in infos] == [0, 0, 1, 1]
    assert infos[0]['img_path'].endswith('images/a/1.jpg')
    assert infos[0]['source'].endswith('anno.json entry 1')
    assert infos[2]['source'].endswith('anno.json entry 0')


def test_subsets_are_seeded_nested_and_in_corpus_order(corpus):
    full = _parquet(corpus)
    captions = [full.get_data_info(i)['captions'][0] for i in range(0, 20, 2)]
    small = _parquet(corpus, subset=dict(num_images=4, seed=3))
    large = _parquet(corpus, subset=dict(num_images=7, seed=3))
    other = _parquet(corpus, subset=dict(num_images=4, seed=4))
    assert len(small) == 8 and len(large) == 14
    rows = {name: d.rows.tolist()
            for name, d in (('small', small), ('large', large),
                            ('other', other))}
    assert rows['small'] == sorted(rows['small'])
    assert set(rows['small']) < set(rows['large'])
    assert rows['small'] != rows['other']
    for idx in range(0, 8, 2):
        info = small.get_data_info(idx)
        assert info['pid'] == idx // 2 and info['sample_idx'] == idx
        assert info['captions'][0] == captions[rows['small'][idx // 2]]
    # the same seed gives the same subset in the JSON form
    from_json = WebPerson(data_root=osp.join(corpus, 'json'),
                          subset=dict(num_images=4, seed=3))
    assert from_json.rows.tolist() == rows['small']


@pytest.mark.parametrize('subset, message', [
    (dict(num_images=0), 'subset of 0 images'),
    (dict(num_images=11), 'subset of 11 images from a corpus of 10'),
    (dict(num_image=4), 'subset must be dict'),
])
def test_bad_subsets(corpus, subset, message):
    with pytest.raises(ValueError, match=message):
        _parquet(corpus, subset=subset)


def _reference_sdm(image_feats, text_feats, images, temperature):
    """SDM written out with the label distribution of *images*: q[i, j]
    is 1 / n over the n samples of row i's image."""
    same = (images[:, None] == images[None, :]).double()
    target = same / same.sum(1, keepdim=True)
    image_feats = torch.nn.functional.normalize(image_feats.double(), dim=1)
    text_feats = torch.nn.functional.normalize(text_feats.double(), dim=1)
    loss = 0
    for sims in (image_feats @ text_feats.t(), text_feats @ image_feats.t()):
        log_p = (sims / temperature).log_softmax(1)
        loss = loss + (log_p.exp() * (log_p - torch.log(target + 1e-8))
                       ).sum(1).mean()
    return loss


@pytest.mark.parametrize('identity', [None, 'caption'])
def test_released_recipe_gives_sibling_captions_two_sdm_positives(
        corpus, identity):
    """The released-code recipe's dataset and model on a WebPerson parquet
    corpus: a batch holding both captions of images 0-2 and one caption of
    image 3 gives SDM two positives in each row of a sibling pair and one
    in the lone caption's row (webreid.py: one pid per image). The loss is
    the SDM of an independent reference with those targets.
    ``identity='caption'`` (the ablation) leaves one positive per row."""
    register_all_modules()
    cfg = Config.fromfile(
        osp.join(REPO_ROOT,
                 'configs/gadms/gadms_vit-b16_8xb128_webperson_coderecipe.py'))
    dataset_cfg = dict(cfg.train_dataloader.dataset.to_dict(),
                       data_root=osp.join(corpus, 'parquet'), ann_file='data')
    if identity is not None:
        dataset_cfg['identity'] = identity
    dataset = DATASETS.build(dataset_cfg)
    samples = [0, 1, 2, 3, 4, 5, 6]
    batch = pseudo_collate([dataset[i] for i in samples])
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    model_cfg['backbone'] = tiny_backbone_cfg(image_size=(384, 128))
    model_cfg['mtp_head'].update(depth=1, heads=2)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    seen = {}
    model.loss_align.register_forward_hook(
        lambda module, args, out: seen.update(args=args, loss=out))
    data = model.data_preprocessor(batch, True)
    model(**data, mode='loss')

    image_feats, text_feats, pids = seen['args']
    positives = (pids[:, None] == pids[None, :]).sum(1).tolist()
    images = torch.tensor([i // 2 for i in samples])
    if identity is None:
        assert positives == [2, 2, 2, 2, 2, 2, 1]
    else:
        assert positives == [1] * 7
        images = torch.arange(len(samples))  # every caption its own
    expected = model.loss_align.loss_weight * _reference_sdm(
        image_feats.detach(), text_feats.detach(), images,
        model.loss_align.temperature)
    assert float(seen['loss'].detach()) == pytest.approx(float(expected),
                                                       rel=1e-5)


def test_parquet_dataset_pickles_for_workers(corpus):
    dataset = _parquet(corpus)
    expected = dataset.get_data_info(5)
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.get_data_info(5)['captions'] == expected['captions']


def test_identity_balanced_sampler_reads_pids_without_rows(corpus):
    dataset = _parquet(corpus)
    sampler = IdentityBalancedSampler(dataset, batch_size=4,
                                      num_instances=2, seed=0)
    batches = np.array(list(sampler)).reshape(-1, 4)
    pids = batches // 2
    assert (pids[:, 0] == pids[:, 1]).all() and (pids[:, 0] != pids[:, 2]
                                                 ).all()


def _write_shard(path, **columns) -> None:
    pq.write_table(pa.table(columns), str(path))


def _good_columns(n: int = 3) -> dict:
    return dict(
        image=[dict(bytes=b'x', path=f'{i}.png') for i in range(n)],
        image_path=[f'{i}.png' for i in range(n)],
        caption1=['a man'] * n,
        caption2=['a woman'] * n)


def test_parquet_shard_with_a_missing_column(tmp_path):
    _write_shard(tmp_path / 'a.parquet', **_good_columns())
    columns = _good_columns()
    del columns['caption2']
    _write_shard(tmp_path / 'b.parquet', **columns)
    with pytest.raises(ValueError,
                       match=r"b.parquet: parquet shard has no column "
                       "'caption2'"):
        WebPerson(data_root=str(tmp_path), ann_file='*.parquet')


def test_parquet_null_caption_names_row_and_field(tmp_path):
    columns = _good_columns(5)
    columns['caption1'][3] = None
    _write_shard(tmp_path / 'shard.parquet', **columns)
    with pytest.raises(ValueError,
                       match="shard.parquet: row 3 field 'caption1' is "
                       'null'):
        WebPerson(data_root=str(tmp_path), ann_file='shard.parquet')


@pytest.mark.parametrize('value', ['', '   ', '&nbsp;', '\x00', '\ufeff'])
def test_captions_that_tokenise_to_nothing_drop_their_image(tmp_path, value,
                                                            caplog_mm):
    """Both forms: the image goes (samples come in pairs), counted; with
    strict_captions the caption is refused, named."""
    columns = _good_columns(5)
    columns['caption2'][3] = value
    columns['caption1'][1] = 'a man &amp; a dog'  # an entity that stays
    _write_shard(tmp_path / 'shard.parquet', **columns)
    entries = [{path: dict(caption1=c1, caption2=c2)} for path, c1, c2 in
               zip(columns['image_path'], columns['caption1'],
                   columns['caption2'])]
    (tmp_path / 'anno.json').write_text(json.dumps(entries))
    for ann_file, where in (('shard.parquet', 'row 3'),
                            ('anno.json', r'entry 3 \(3.png\)')):
        dataset = WebPerson(data_root=str(tmp_path), ann_file=ann_file)
        assert len(dataset) == 8
        assert [dataset.get_data_info(i)['img_path'][-5:]
                for i in range(0, 8, 2)] == [
                    '0.png', '1.png', '2.png', '4.png']
        assert dataset.sample_pids().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert 'WebPerson: dropped 1 images with captions that tokenise ' \
            'to nothing (1 captions in the corpus' in caplog_mm.text
        with pytest.raises(ValueError, match=rf'^1 captions tokenise to '
                           rf'nothing \(strict_captions\): .*{ann_file} '
                           rf"{where} field 'caption2'"):
            WebPerson(data_root=str(tmp_path), ann_file=ann_file,
                      strict_captions=True)


def test_parquet_null_image_path_names_shard_row_and_column(tmp_path):
    columns = _good_columns(4)
    columns['image_path'][2] = None
    _write_shard(tmp_path / 'shard.parquet', **columns)
    dataset = WebPerson(data_root=str(tmp_path), ann_file='shard.parquet')
    assert dataset.get_data_info(3)['img_path'] == '1.png'
    with pytest.raises(ValueError, match=r'shard.parquet row 2, column '
                       r'"image_path": null'):
        dataset.get_data_info(4)


def test_relative_data_roots(corpus, tmp_path, monkeypatch):
    """The shipped configs' data_root is relative (data/WebPerson): both
    forms read it from the working directory it is relative to."""
    shutil.copytree(corpus, tmp_path / 'data')
    monkeypatch.chdir(tmp_path)
    parquet = WebPerson(data_root='data/parquet', ann_file='data')
    json_form = WebPerson(data_root='data/json')
    assert len(parquet) == len(json_form) == 2 * NUM_IMAGES
    assert json_form.get_data_info(0)['img_path'].startswith(
        'data/json/images/')
    assert LoadPersonImage()(json_form.get_data_info(0))['img'].shape[2] == 3


def test_parquet_non_string_caption_column(tmp_path):
    columns = _good_columns()
    columns['caption2'] = [1, 2, 3]
    _write_shard(tmp_path / 'shard.parquet', **columns)
    with pytest.raises(ValueError, match="shard.parquet: column 'caption2' "
                       'must hold strings'):
        WebPerson(data_root=str(tmp_path), ann_file='shard.parquet')


def test_no_parquet_shards(tmp_path):
    with pytest.raises(FileNotFoundError, match='no parquet shards match'):
        WebPerson(data_root=str(tmp_path), ann_file='data')


@pytest.mark.parametrize('entries, message', [
    ([{'a.jpg': {'caption1': 'x'}}], "entry 0 \\(a.jpg\\) has no field "
     "'caption2'"),
    ([{'a.jpg': {'caption1': 'x', 'caption2': 'y'}},
      {'b.jpg': {'caption1': 'x', 'caption2': 3}}],
     "entry 1 \\(b.jpg\\) field 'caption2' must be a string"),
    ([{'a.jpg': {'caption1': 'x', 'caption2': 'y'}},
      {'a.jpg': {'caption1': 'z', 'caption2': 'w'}}],
     'entry 1 repeats image a.jpg of entry 0'),
    ([{'a.jpg': {}, 'b.jpg': {}}], 'entry 0 must be an object with exactly'),
    ({'a.jpg': {}}, 'expected a list of entries'),
])
def test_bad_json_entries(tmp_path, entries, message):
    (tmp_path / 'anno.json').write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=message) as error:
        WebPerson(data_root=str(tmp_path), ann_file='anno.json')
    assert 'anno.json' in str(error.value)


def test_incomplete_or_torn_shard_sets_are_refused(corpus, tmp_path):
    copy = tmp_path / 'parquet'
    shutil.copytree(osp.join(corpus, 'parquet'), copy)
    shards = sorted((copy / 'data').iterdir())
    assert [p.name for p in shards] == [
        f'train-{i:05d}-of-00003.parquet' for i in range(3)]
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[:len(data) // 2])  # a torn write
    with pytest.raises(ValueError, match=f'{shards[1]}: not a readable '
                       'parquet shard'):
        WebPerson(data_root=str(copy), ann_file='data')
    shards[1].unlink()  # an unfinished export or download
    with pytest.raises(FileNotFoundError,
                       match=r'incomplete parquet shard set, 1 of 3 missing '
                       r'\(train-00001-of-00003.parquet\)'):
        WebPerson(data_root=str(copy), ann_file='data')
