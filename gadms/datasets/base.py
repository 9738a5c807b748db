import json
import os.path as osp
from abc import abstractmethod
from typing import Any, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from terminaltables import AsciiTable


class TextPersonDataset(BaseDataset):
    """Base class of text-based person retrieval datasets.

    A subclass reads its annotation into *image records*, one per image:
    ``dict(img_path=str, pid=int, captions=list[str], ...)``. This class
    turns them into samples:

    - training (``test_mode=False``): one sample per caption,
      ``captions=[caption]``, ``caption_idx`` its position in the image's
      captions;
    - testing (``test_mode=True``): one sample per gallery image carrying
      all of its captions, so that every image and every query caption is
      encoded exactly once.

    Every sample also gets ``image_id``, the running index of its image in
    the split.

    Args:
        split (str): Which split to read, one of ``SPLITS``.
        test_mode (bool, optional): Defaults to ``split != 'train'``.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    SPLITS: Sequence[str] = ('train', 'val', 'test')

    def __init__(self,
                 split: str = 'train',
                 test_mode: Optional[bool] = None,
                 **kwargs) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: unknown split '
                             f'{split!r}, expected one of {self.SPLITS}')
        self.split = split
        if test_mode is None:
            test_mode = split != 'train'
        super().__init__(test_mode=test_mode, **kwargs)

    def read_json_annotations(self) -> Any:
        """Parse ``self.ann_file``, naming it in every error."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{type(self).__name__}: annotation file {self.ann_file} '
                'does not exist')
        with open(self.ann_file, encoding='utf-8') as f:
            try:
                return json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f'{self.ann_file} is not valid JSON: '
                                 f'{err}') from err

    @abstractmethod
    def load_image_records(self) -> List[dict]:
        """Read the split's images: ``img_path``, ``pid``, ``captions``."""

    def load_data_list(self) -> List[dict]:
        records = self.load_image_records()
        data_list = []
        for image_id, record in enumerate(records):
            self._check_record(record, image_id)
            record = dict(record, image_id=image_id)
            if self.test_mode:
                data_list.append(record)
                continue
            for caption_idx, caption in enumerate(record['captions']):
                data_list.append(
                    dict(record, captions=[caption], caption_idx=caption_idx))
        self._log_summary(records)
        return data_list

    def _check_record(self, record: dict, index: int) -> None:
        captions = record.get('captions')
        if not isinstance(captions, list) or not captions or not all(
                isinstance(c, str) and c.strip() for c in captions):
            raise ValueError(
                f'{type(self).__name__} ({self.split}): image record {index} '
                f'({record.get("img_path")}) needs "captions" as a non-empty '
                f'list of non-empty strings, got {captions!r}')

    def _log_summary(self, records: List[dict]) -> None:
        num_ids = len({r['pid'] for r in records})
        num_captions = sum(len(r['captions']) for r in records)
        table = AsciiTable(
            [['split', 'identities', 'images', 'captions'],
             [self.split, num_ids, len(records), num_captions]],
            title=type(self).__name__)
        print_log('\n' + table.table, logger='current')
