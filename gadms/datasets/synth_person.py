from typing import Dict, List, Tuple

import numpy as np

from gadms.registry import DATASETS
from .base import TextPersonDataset
from .synth.attributes import PersonAttributes, sample_attributes
from .synth.captions import generate_captions
from .synth.render import render_person

# Stream ids that keep the random draws of identities, photos and captions
# independent of each other.
_IDENTITY_STREAM, _PHOTO_STREAM, _CAPTION_STREAM = 0, 1, 2


@DATASETS.register_module()
class SynthPerson(TextPersonDataset):
    """Procedurally drawn pedestrians with attribute-derived captions.

    The embedded default dataset of gadms: no download, deterministic for a
    seed. Each identity has a fixed outfit (clothing types and colours,
    stripes, bag, hair, headwear, skin tone); each of its photos varies
    viewpoint, stride, arm swing, scale, position, background and light;
    each photo gets ``captions_per_image`` captions in varied phrasing.
    Identities are split into train, val and test in that order (disjoint).
    pids are the global identity indices, so training pids run from 0.

    Images are drawn when a sample is read, so ``img`` is already present
    and the pipeline starts after image loading.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        num_identities (dict): Identities per split.
        images_per_identity (int): Photos of each identity.
        captions_per_image (int): Captions of each photo.
        image_size (tuple[int, int]): Drawn ``(height, width)``.
        noise_rate (float): Probability that a caption gets a clause that
            says nothing about the person.
        wrong_attribute_rate (float): Probability that one colour word of a
            caption is replaced by a wrong one.
        seed (int): Seed of everything drawn.
        **kwargs: Passed to :class:`TextPersonDataset`.

    Use in configs::

        dict(type='SynthPerson', split='train', noise_rate=0.2,
             pipeline=train_pipeline)
    """

    def __init__(self,
                 split: str = 'train',
                 num_identities: Dict[str, int] = dict(
                     train=200, val=50, test=50),
                 images_per_identity: int = 4,
                 captions_per_image: int = 2,
                 image_size: Tuple[int, int] = (128, 48),
                 noise_rate: float = 0.0,
                 wrong_attribute_rate: float = 0.0,
                 seed: int = 0,
                 **kwargs) -> None:
        missing = set(self.SPLITS) - set(num_identities)
        if missing:
            raise ValueError(f'SynthPerson: num_identities lacks splits '
                             f'{sorted(missing)}')
        for name, value in (('noise_rate', noise_rate),
                            ('wrong_attribute_rate', wrong_attribute_rate)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'SynthPerson: {name} must be in [0, 1], '
                                 f'got {value}')
        self.num_identities = dict(num_identities)
        self.images_per_identity = images_per_identity
        self.captions_per_image = captions_per_image
        self.image_size = tuple(image_size)
        self.noise_rate = noise_rate
        self.wrong_attribute_rate = wrong_attribute_rate
        self.seed = seed
        super().__init__(split=split, **kwargs)

    def _identity_range(self) -> range:
        start = 0
        for split in self.SPLITS:
            stop = start + self.num_identities[split]
            if split == self.split:
                return range(start, stop)
            start = stop

    def load_image_records(self) -> List[dict]:
        records = []
        for identity in self._identity_range():
            attrs = sample_attributes(
                np.random.default_rng([self.seed, _IDENTITY_STREAM,
                                       identity]))
            for photo in range(self.images_per_identity):
                captions = generate_captions(
                    attrs,
                    np.random.default_rng(
                        [self.seed, _CAPTION_STREAM, identity, photo]),
                    num_captions=self.captions_per_image,
                    noise_rate=self.noise_rate,
                    wrong_attribute_rate=self.wrong_attribute_rate)
                records.append(
                    dict(
                        img_path=f'{self.split}/{identity:05d}_{photo}.png',
                        pid=identity,
                        photo=photo,
                        captions=[c['caption'] for c in captions],
                        caption_noise=[c['noise'] for c in captions],
                        caption_annotations=[
                            dict(noise_spans=c['noise_spans'])
                            for c in captions],
                        attributes=attrs.to_dict()))
        return records

    def render(self, data_info: dict) -> np.ndarray:
        """Draw the photo described by a data info (BGR uint8 [H, W, 3])."""
        rng = np.random.default_rng(
            [self.seed, _PHOTO_STREAM, data_info['pid'], data_info['photo']])
        return render_person(
            PersonAttributes(**data_info['attributes']), rng, self.image_size)

    def get_data_info(self, idx: int) -> dict:
        data_info = super().get_data_info(idx)
        img = self.render(data_info)
        data_info.update(img=img, img_shape=img.shape[:2],
                         ori_shape=img.shape[:2])
        return data_info
