"""The inference API and tools/retrieve.py on SynthPerson."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from gadms.apis import TextPersonInferencer
from gadms.datasets import SynthPerson
from gadms.registry import MODELS

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO_ROOT, 'configs/baselines/clip-sdm_tiny_synthperson.py')
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
        osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_synthperson.py'))
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
    result = subprocess.run(
        [sys.executable, 'tools/retrieve.py', CONFIG, checkpoint,
         '--gallery', 'test', '--query-caption', '3', '--topk', '5',
         '--out', out], cwd=REPO_ROOT, capture_output=True,
        text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'query:' in result.stdout and '| rank |' in result.stdout
    picture = cv2.imread(out)
    assert picture.shape[1] > 5 * 96 and picture.shape[0] > 256
    # borders: green (same person) or red (another), never grey here
    row = picture[-44 - 256 - 6 - 3]
    green = np.all(row == (60, 170, 60), axis=1).sum()
    red = np.all(row == (50, 50, 220), axis=1).sum()
    assert green + red > 5 * 90
