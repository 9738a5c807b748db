"""The inference API and tools/retrieve.py on SynthPerson."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from gadms.apis import TextPersonInferencer
from gadms.datasets import SynthPerson, export_synth_person
from gadms.registry import DATASETS, MODELS

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
SYNTH = dict(num_identities=dict(train=4, val=2, test=6),
             images_per_identity=3)
TEST_PIPELINE = [
    dict(type='Resize', scale=(32, 96), keep_ratio=False),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]


def _checkpoint(path: str, seed: int) -> str:
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return _checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'a.pth'), 0)


@pytest.fixture(scope='module')
def inferencer(checkpoint) -> TextPersonInferencer:
    return TextPersonInferencer(CONFIG, checkpoint)


def _test_loop_similarity(model) -> tuple:
    """Captions, similarity [T, G] and pids as tools/test.py computes them
    (the test pipeline, the data preprocessor, predict)."""
    dataset = SynthPerson(split='test', pipeline=TEST_PIPELINE, **SYNTH)
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), False)
    with torch.no_grad():
        samples = model.predict(**data)
    gallery = torch.stack([s.image_feat for s in samples])
    queries = torch.cat([s.text_feats for s in samples])
    captions = [c for s in samples for c in s.captions]
    return captions, queries @ gallery.t()


def test_search_ranks_like_the_test_loop(inferencer):
    index = inferencer.build_index(
        dict(type='SynthPerson', split='test', **SYNTH), dtype=torch.float32,
        progress=False)
    assert len(index) == 18 and index.pids.tolist() == [
        pid for pid in range(6, 12) for _ in range(3)
    ]
    captions, similarity = _test_loop_similarity(inferencer.model)
    expected = similarity.argsort(dim=1, descending=True, stable=True)
    hits = inferencer.search(captions, index, topk=18)
    for row, query_hits in enumerate(hits):
        assert [h['index'] for h in query_hits] == expected[row].tolist()
        assert [h['rank'] for h in query_hits] == list(range(1, 19))
        torch.testing.assert_close(
            torch.tensor([h['score'] for h in query_hits]),
            similarity[row, expected[row]], atol=1e-5, rtol=0)


def test_index_round_trip_and_refusal(inferencer, tmp_path):
    dataset = SynthPerson(split='test', **SYNTH)
    images = [dataset.get_data_info(i)['img'] for i in range(4)]
    folder = tmp_path / 'gallery'
    folder.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f'{i}.png'), image)
    index = inferencer.build_index(str(folder), progress=False)
    assert index.features.dtype == torch.float16 and index.pids is None
    path = str(tmp_path / 'index.pth')
    index.save(path)
    loaded = inferencer.load_index(path)
    assert loaded.paths == index.paths and torch.equal(loaded.features,
                                                       index.features)
    other = TextPersonInferencer(
        CONFIG, _checkpoint(str(tmp_path / 'b.pth'), seed=1))
    with pytest.raises(ValueError, match='was built by another model'):
        other.load_index(path)
    other_config = TextPersonInferencer(
        osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_synthperson.py'))
    with pytest.raises(ValueError, match='was built by another model'):
        other_config.load_index(path)
    hits = inferencer.search(['a person', 'someone walking'], loaded, topk=2)
    assert len(hits) == 2 and all(len(h) == 2 for h in hits)
    assert hits[0][0]['score'] >= hits[0][1]['score']


def test_image_to_text_ranking(inferencer):
    dataset = SynthPerson(split='test', **SYNTH)
    info = dataset.get_data_info(0)
    captions = ['a tree', *info['captions'], 'a red car']
    ranked = inferencer.rank_captions(info['img'], captions)
    scores = [r['score'] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r['caption'] for r in ranked) == sorted(captions)
    text = inferencer.encode_texts(captions)
    image = inferencer.encode_images([info['img']])
    best = int((image @ text.t()).argmax())
    assert ranked[0]['caption'] == captions[best]


def test_retrieve_cli_writes_a_picture(checkpoint, tmp_path):
    out = str(tmp_path / 'result.png')
    result = run_tool('tools/retrieve.py', CONFIG, checkpoint, '--split',
                      'test', '--query-caption', '3', '--topk', '5',
                      '--out-file', out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'query:' in result.stdout and '| rank |' in result.stdout
    picture = cv2.imread(out)
    assert picture.shape[1] > 5 * 96 and picture.shape[0] > 256
    # borders: green (same person) or red (another), never grey here
    row = picture[-44 - 256 - 6 - 3]
    green = np.all(row == (60, 170, 60), axis=1).sum()
    red = np.all(row == (50, 50, 220), axis=1).sum()
    assert green + red > 5 * 90


def test_index_is_used_from_another_folder_and_after_a_move(checkpoint,
                                                            tmp_path):
    dataset = SynthPerson(split='test', **SYNTH)
    gallery = tmp_path / 'build' / 'gallery'
    gallery.mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(gallery / f'{i}.png'),
                    dataset.get_data_info(i)['img'])
    index = str(tmp_path / 'index.pth')
    tool = osp.join(REPO_ROOT, 'tools/retrieve.py')

    def retrieve(cwd, *options):
        return run_tool(tool, CONFIG, checkpoint, '--query',
                        'a person in a red coat', '--topk', '2', *options,
                        cwd=str(cwd))

    # built with a relative folder name from one directory...
    built = retrieve(tmp_path / 'build', '--gallery', 'gallery',
                     '--save-index', index)
    assert built.returncode == 0, built.stderr[-2000:]
    # ...searched, and its hits drawn, from another
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    searched = retrieve(elsewhere, '--gallery', index, '--out-file',
                        'hits.png')
    assert searched.returncode == 0, searched.stderr[-2000:]
    assert str(gallery) in searched.stdout
    assert cv2.imread(str(elsewhere / 'hits.png')) is not None
    # the gallery moves: a clear error, then the remedy it names
    moved = tmp_path / 'moved'
    gallery.rename(moved)
    refused = retrieve(elsewhere, '--gallery', index)
    assert refused.returncode != 0
    assert f'its gallery folder {gallery} does not exist (moved?); pass ' \
        'the new folder as gallery_root (tools/retrieve.py --gallery-root)' \
        in refused.stderr
    found = retrieve(elsewhere, '--gallery', index, '--gallery-root',
                     str(moved), '--out-file', 'moved.png')
    assert found.returncode == 0, found.stderr[-2000:]
    assert str(moved) in found.stdout
    assert cv2.imread(str(elsewhere / 'moved.png')) is not None


def test_inferencer_features_equal_predicts_on_benchmark_data(tmp_path):
    """Through the config's own test pipeline (PIL resize of image files,
    not the arrays' cv2 resize) the inferencer gives predict's features."""
    root = str(tmp_path / 'cuhk')
    export_synth_person(root, 'cuhk-pedes', num_identities=dict(
        train=2, val=2, test=3), images_per_identity=2)
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_cuhk-pedes.py'))
    cfg.test_dataloader.dataset.data_root = root
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    checkpoint = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    data = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), False)
    with torch.no_grad():
        samples = model.predict(**data)
    inferencer = TextPersonInferencer(cfg, checkpoint)
    paths = [s.img_path for s in samples]
    captions = [c for s in samples for c in s.captions]
    torch.testing.assert_close(inferencer.encode_images(paths),
                               torch.stack([s.image_feat for s in samples]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(inferencer.encode_texts(captions),
                               torch.cat([s.text_feats for s in samples]),
                               atol=1e-6, rtol=0)


def test_retrieve_cli_takes_cfg_options(checkpoint):
    # the config's test split cut to 2 identities x 3 images
    result = subprocess.run(
        [sys.executable, 'tools/retrieve.py', CONFIG, checkpoint,
         '--split', 'test', '--query-caption', '0', '--topk', '100',
         '--cfg-options', 'test_dataloader.dataset.num_identities.test=2',
         'test_dataloader.dataset.images_per_identity=3'], cwd=REPO_ROOT,
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    ranks = [line for line in result.stdout.splitlines()
             if line.startswith('| ') and line[2].isdigit()]
    assert len(ranks) == 6
