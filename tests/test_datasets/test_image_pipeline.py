"""The benchmark pipelines resize and erase as the released code's
torchvision pipeline does (Resize on a PIL image, ToTensor, Normalize,
RandomErasing with CLIP's mean as the value)."""
import os.path as osp

import numpy as np
import pytest
import torch
from common import REPO_ROOT
from mmengine.config import Config
from PIL import Image
from torchvision import transforms as T

from gadms.datasets.transforms import CLIP_MEAN, CLIP_STD
from gadms.models.data_preprocessors import TextPersonDataPreprocessor
from gadms.registry import TRANSFORMS

CONFIG = 'configs/_base_/datasets/cuhk_pedes.py'
NORMALISED_MEAN = [m / 255 for m in CLIP_MEAN]
NORMALISED_STD = [s / 255 for s in CLIP_STD]


def _photo() -> np.ndarray:
    """A fixed 317 x 149 RGB image with edges and gradients."""
    rows, cols = np.mgrid[0:317, 0:149]
    image = np.stack([(rows * 7 + cols * 3) % 256, (rows * cols) % 251,
                      ((rows // 9 + cols // 5) % 2) * 200 + 30], axis=-1)
    return image.astype(np.uint8)


def _pipeline_step(name: str) -> dict:
    pipeline = Config.fromfile(osp.join(REPO_ROOT, CONFIG)).train_pipeline
    return next(step for step in pipeline if step['type'] == name)


def _resize(image_rgb: np.ndarray) -> np.ndarray:
    resize = TRANSFORMS.build(_pipeline_step('Resize'))
    bgr = np.ascontiguousarray(image_rgb[..., ::-1])
    return resize(dict(img=bgr, img_shape=bgr.shape[:2]))['img']


def _to_model_input(image_bgr: np.ndarray) -> torch.Tensor:
    """The data preprocessor's normalisation of one loader image."""
    tensor = torch.from_numpy(np.ascontiguousarray(image_bgr)).permute(
        2, 0, 1)[None]
    return TextPersonDataPreprocessor().normalise_images(tensor)[0]


def test_resize_equals_torchvision_on_pil():
    image = _photo()
    expected = T.Resize((384, 128))(Image.fromarray(image))
    np.testing.assert_array_equal(_resize(image)[..., ::-1],
                                  np.asarray(expected))


def test_erasing_equals_torchvision_after_normalize():
    resized = _resize(_photo())
    erasing = TRANSFORMS.build(_pipeline_step('NormalisedRandomErasing'))
    released = T.Compose([
        T.ToTensor(),
        T.Normalize(NORMALISED_MEAN, NORMALISED_STD),
        T.RandomErasing(p=0.5, scale=(0.02, 0.4), value=NORMALISED_MEAN),
    ])
    erased = 0
    for seed in range(12):
        torch.manual_seed(seed)
        ours = _to_model_input(erasing(dict(img=resized.copy()))['img'])
        torch.manual_seed(seed)
        expected = released(Image.fromarray(
            np.ascontiguousarray(resized[..., ::-1])))
        torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)
        fill = torch.tensor(NORMALISED_MEAN)[:, None]
        erased += bool(torch.isclose(expected.flatten(1), fill,
                                     atol=1e-6).all(0).any())
    assert 3 <= erased <= 9  # p = 0.5: both branches were compared


def test_erasing_checks_its_arguments():
    with pytest.raises(ValueError, match='erase_prob'):
        TRANSFORMS.build(dict(type='NormalisedRandomErasing',
                              erase_prob=1.5))
