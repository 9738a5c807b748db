import os.path as osp
from typing import List

from gadms.registry import DATASETS
from .base import TextPersonDataset


@DATASETS.register_module()
class WebPerson(TextPersonDataset):
    """WebPerson pretraining corpus, JSON form of the released code.

    The annotation file is a JSON list of single-key objects
    ``{"<image path relative to images/>": {"caption1": str,
    "caption2": str}}``. Images are sorted by path; each image gives two
    training samples (one per caption) sharing the image's pid, and the
    sample index addresses the GA-DMS score bank. Training split only.

    Args:
        data_root (str): Corpus folder.
        ann_file (str): Annotation file relative to ``data_root``.
        data_prefix (dict): ``img_path`` folder relative to ``data_root``.
        **kwargs: Passed to :class:`TextPersonDataset`.

    Use in configs::

        dict(type='WebPerson', data_root='data/WebPerson',
             ann_file='100w.json', pipeline=train_pipeline)
    """

    SPLITS = ('train', )
    CAPTION_FIELDS = ('caption1', 'caption2')

    def __init__(self,
                 data_root: str,
                 ann_file: str = 'annotations.json',
                 data_prefix: dict = dict(img_path='images'),
                 **kwargs) -> None:
        super().__init__(
            split='train',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=data_prefix,
            **kwargs)

    def load_image_records(self) -> List[dict]:
        entries = self.read_json_annotations()
        if not isinstance(entries, list):
            raise ValueError(f'{self.ann_file}: expected a list of entries, '
                             f'got {type(entries).__name__}')
        images = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f'{self.ann_file}: entry {index} must be an '
                                 'object with exactly one image path')
            (path, captions), = entry.items()
            missing = [k for k in self.CAPTION_FIELDS if k not in captions]
            if missing:
                raise ValueError(f'{self.ann_file}: entry {index} ({path}) '
                                 f'has no field {missing[0]!r}')
            images[path] = [captions[k] for k in self.CAPTION_FIELDS]
        folder = self.data_prefix['img_path']
        return [
            dict(img_path=osp.join(folder, path), pid=pid,
                 captions=images[path])
            for pid, path in enumerate(sorted(images))
        ]
