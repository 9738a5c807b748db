"""tools/serve.py's service: a dataset split with its pids and captions, a
saved index that keeps what is added, and a pretrained folder."""
import cv2
import numpy as np
import torch
from common import REPO_ROOT, run_tool_main, tool_module
from mmengine.config import Config

from gadms.apis import GalleryIndex
from gadms.datasets import SynthPerson
from gadms.registry import MODELS

CONFIG = f'{REPO_ROOT}/configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'
SPLIT = dict(num_identities=dict(train=200, val=50, test=50),
             images_per_identity=4, captions_per_image=2,
             image_size=(128, 48), noise_rate=0.0, seed=0)


def _checkpoint(path) -> str:
    torch.manual_seed(0)
    torch.save(dict(state_dict=MODELS.build(
        Config.fromfile(CONFIG).model).state_dict()), str(path))
    return str(path)


def test_a_split_is_served_with_its_pids_captions_and_pixels(tmp_path):
    tool = tool_module('tools/serve.py')
    service = tool.build_service(tool.parse_args(
        [CONFIG, _checkpoint(tmp_path / 'model.pth'), '--split', 'test']))
    dataset = SynthPerson(split='test', **SPLIT)
    assert len(service.index) == len(dataset) == 200
    hit = service.search('a man in a red coat', 3).result(timeout=60)[0]
    info = dataset.get_data_info(hit['row'])
    assert hit['pid'] == info['pid']
    assert hit['captions'] == list(info['captions'])
    data, media_type = service.image(hit['row'])
    assert media_type == 'image/png'
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8),
                                       cv2.IMREAD_COLOR), info['img'])


def test_a_saved_index_keeps_what_is_added(tmp_path):
    tool = tool_module('tools/serve.py')
    gallery = tmp_path / 'photos'
    gallery.mkdir()
    for number in range(3):
        cv2.imwrite(str(gallery / f'{number}.png'),
                    np.full((96, 32, 3), 60 * number, np.uint8))
    saved = str(tmp_path / 'photos.pth')
    checkpoint = _checkpoint(tmp_path / 'model.pth')
    service = tool.build_service(tool.parse_args(
        [CONFIG, checkpoint, '--gallery', str(gallery), '--save-index',
         saved]))
    assert len(GalleryIndex.load(saved)) == 3
    (gallery / 'day2').mkdir()
    cv2.imwrite(str(gallery / 'day2' / 'new.png'),
                np.full((96, 32, 3), 250, np.uint8))
    assert service.add_folder('day2').result(timeout=60)['added'] == 1
    assert GalleryIndex.load(saved).paths[-1] == 'day2/new.png'
    # the saved index serves again, and so does a packaged model of it
    again = tool.build_service(tool.parse_args(
        [CONFIG, checkpoint, '--gallery', saved]))
    assert len(again.index) == 4
    run_tool_main('tools/model_converters/export_pretrained.py', CONFIG,
                  checkpoint, str(tmp_path / 'packaged'))
    packaged = tool.build_service(tool.parse_args(
        ['--pretrained', str(tmp_path / 'packaged'), '--gallery', saved]))
    assert packaged.search('a person', 4).result(timeout=60) == \
        again.search('a person', 4).result(timeout=60)
