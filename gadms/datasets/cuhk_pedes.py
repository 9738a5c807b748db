import json
import os.path as osp
from typing import List

from gadms.registry import DATASETS
from .base import TextPersonDataset

_FIELD_TYPES = dict(split=str, captions=list, file_path=str, id=int)


@DATASETS.register_module()
class CUHKPEDES(TextPersonDataset):
    """CUHK-PEDES in its published layout.

    ``<data_root>/reid_raw.json`` is a list of records ``{split, captions,
    file_path, id, processed_tokens}`` with images under
    ``<data_root>/imgs/<file_path>``. Identity ids are 1-based; training pids
    are ``id - 1`` (checked to be contiguous from 0), val and test pids are
    the raw ids (IRRA convention).

    Args:
        data_root (str): Dataset folder.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        ann_file (str): Annotation file, relative to ``data_root``.
        data_prefix (dict): ``img_path`` folder, relative to ``data_root``.
        **kwargs: Passed to :class:`TextPersonDataset`.

    Use in configs::

        dict(type='CUHKPEDES', data_root='data/CUHK-PEDES', split='test',
             pipeline=test_pipeline)
    """

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = 'reid_raw.json',
                 data_prefix: dict = dict(img_path='imgs'),
                 **kwargs) -> None:
        super().__init__(
            split=split,
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=data_prefix,
            **kwargs)

    def _read_annotations(self) -> list:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: annotation file {self.ann_file} '
                'does not exist')
        with open(self.ann_file, encoding='utf-8') as f:
            try:
                annotations = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{self.ann_file} is not valid JSON: '
                                 f'{err}') from err
        if not isinstance(annotations, list):
            raise ValueError(f'{self.ann_file}: expected a list of records, '
                             f'got {type(annotations).__name__}')
        return annotations

    def _check_fields(self, record, index: int) -> None:
        if not isinstance(record, dict):
            raise ValueError(f'{self.ann_file}: record {index} is not an '
                             'object')
        for field, kind in _FIELD_TYPES.items():
            if field not in record:
                raise ValueError(f'{self.ann_file}: record {index} has no '
                                 f'field "{field}"')
            if not isinstance(record[field], kind):
                raise ValueError(
                    f'{self.ann_file}: record {index} field "{field}" must '
                    f'be {kind.__name__}, got {record[field]!r}')

    def load_image_records(self) -> List[dict]:
        records = []
        image_folder = self.data_prefix['img_path']
        for index, raw in enumerate(self._read_annotations()):
            self._check_fields(raw, index)
            if raw['split'] != self.split:
                continue
            pid = raw['id'] - 1 if self.split == 'train' else raw['id']
            records.append(
                dict(
                    img_path=osp.join(image_folder, raw['file_path']),
                    pid=pid,
                    captions=raw['captions']))
        if self.split == 'train':
            self._check_contiguous_pids(records)
        return records

    def _check_contiguous_pids(self, records: List[dict]) -> None:
        pids = {r['pid'] for r in records}
        if pids and pids != set(range(len(pids))):
            raise ValueError(
                f'{self.ann_file}: training ids must be 1..N without gaps '
                f'(pids 0..N-1); got {len(pids)} ids from {min(pids) + 1} '
                f'to {max(pids) + 1}')
