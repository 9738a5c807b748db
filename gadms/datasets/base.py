import json
import logging
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from terminaltables import AsciiTable

from .sample_seeds import seeded_global_generators
from .transforms.tokenizer import tokenises_to_nothing

# examples quoted in a warning or error about many records
MAX_QUOTED = 3
# the groups of captions a training sample can be compared with
CAPTION_GROUPS = (None, 'image', 'identity')


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
    the split, and ``benchmark`` and ``split``, which name the dataset in
    multi-benchmark evaluation. A record may carry ``source`` (annotation
    file and record index) for error messages.

    With ``caption_groups``, a training sample also carries the captions it
    is compared with by ``ConsensusTokens``: ``group_captions`` (every
    caption of its image, or of its identity in record order) and
    ``group_index`` (its own position among them). The groups are kept
    once on the dataset, not in every sample.

    Args:
        split (str): Which split to read, one of ``SPLITS``.
        test_mode (bool, optional): Defaults to ``split != 'train'``.
        name (str, optional): Dataset name in metrics and tables. Defaults
            to ``NAME``.
        allow_outside_root (bool): Read image paths of the annotations that
            leave the image folder (absolute, or climbing out with ``..``).
            Off by default: such a path is an error naming the record.
        strict_captions (bool): Refuse captions that tokenise to nothing
            instead of dropping them.
        caption_groups (str, optional): ``'image'`` or ``'identity'``:
            give training samples their group's captions (see above).
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`.
    """

    SPLITS: Sequence[str] = ('train', 'val', 'test')
    NAME = ''
    # split -> (identities, images, captions) as published
    PUBLISHED_COUNTS: Dict[str, Tuple[int, int, int]] = {}

    def __init__(self,
                 split: str = 'train',
                 test_mode: Optional[bool] = None,
                 name: Optional[str] = None,
                 allow_outside_root: bool = False,
                 strict_captions: bool = False,
                 caption_groups: Optional[str] = None,
                 **kwargs) -> None:
        self.allow_outside_root = allow_outside_root
        self.strict_captions = strict_captions
        if caption_groups not in CAPTION_GROUPS:
            raise ValueError(f'{type(self).__name__}: caption_groups must be '
                             f'one of {CAPTION_GROUPS}, got '
                             f'{caption_groups!r}')
        self.caption_groups = caption_groups
        self.group_captions: List[List[str]] = []
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: unknown split '
                             f'{split!r}, expected one of {self.SPLITS}')
        self.split = split
        self.name = name or self.NAME or type(self).__name__
        if test_mode is None:
            test_mode = split != 'train'
        super().__init__(test_mode=test_mode, **kwargs)
        if test_mode:
            self._refuse_skipping_loader()

    def _refuse_skipping_loader(self) -> None:
        """An evaluation must see every gallery image: a loader that skips
        unreadable images would silently shrink the gallery and drop its
        queries, so ``LoadPersonImage(on_error='skip')`` is refused."""
        for step in self.pipeline.transforms:
            if getattr(step, 'on_error', None) == 'skip':
                raise ValueError(
                    f'{self.name} ({self.split}): the test pipeline has '
                    f"{type(step).__name__}(on_error='skip'), which would "
                    'drop unreadable gallery images and their queries from '
                    "the evaluation without a trace; use on_error='raise' "
                    'and fix or remove the images (tools/misc/'
                    'check_dataset.py lists them)')

    def __getitem__(self, idx: int) -> dict:
        """The processed sample; an index from gadms's training samplers
        (a :class:`~gadms.datasets.sample_seeds.SeededIndex`) runs the
        pipeline, and any redraw of a skipped sample, on generators seeded
        from ``(seed, epoch, index)``: the same augmentation in any worker
        or process, resumed or not."""
        seed = getattr(idx, 'sample_seed', None)
        if seed is None:
            return super().__getitem__(idx)
        with seeded_global_generators(seed()):
            return super().__getitem__(int(idx))

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
            except UnicodeDecodeError as err:
                raise ValueError(
                    f'{self.ann_file} is not UTF-8 text (byte '
                    f'{err.object[err.start:err.start + 1]!r} at offset '
                    f'{err.start}); re-save it as UTF-8') from err

    def image_path(self, folder: str, relative: str, where: str) -> str:
        """``folder/relative`` for an annotation's image path; refuses one
        that leaves ``folder`` unless ``allow_outside_root``.

        Raises:
            ValueError: naming ``where`` (file and record) and the path.
        """
        if not self.allow_outside_root and leaves_folder(relative):
            raise ValueError(
                f'{where}: image path {relative!r} leaves the image folder '
                f'{folder}; set allow_outside_root=True to read it')
        return osp.join(folder, relative)

    def load_image_records(self) -> List[dict]:
        """Read the split's images: ``img_path``, ``pid``, ``captions``."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement load_image_records')

    def sample_pids(self) -> np.ndarray:
        """``[len(self)]`` pid of every sample, without loading images."""
        # BaseDataset's accessor: a subclass's one may load or draw images
        return np.array([
            BaseDataset.get_data_info(self, index)['pid']
            for index in range(len(self))
        ])

    def load_data_list(self) -> List[dict]:
        records = self.load_image_records()
        for index, record in enumerate(records):
            self.check_captions(record, index)
        records = self.drop_empty_captions(records)
        if not records:
            raise ValueError(
                f'{self.ann_file or type(self).__name__}: the {self.split!r} '
                f'split of {self.name} has no records')
        data_list = []
        groups = self._group_records(records)
        for image_id, record in enumerate(records):
            record = dict(record, image_id=image_id)
            if self.test_mode:
                data_list.append(record)
                continue
            group_id, first = groups[image_id]
            for caption_idx, caption in enumerate(record['captions']):
                sample = dict(record, captions=[caption],
                              caption_idx=caption_idx)
                if group_id is not None:
                    sample.update(group_id=group_id,
                                  group_index=first + caption_idx)
                data_list.append(sample)
        self.log_summary(
            len({r['pid'] for r in records}), len(records),
            sum(len(r['captions']) for r in records))
        return data_list

    def _group_records(self, records: List[dict]) -> List[tuple]:
        """Fill ``self.group_captions`` for ``caption_groups`` and return,
        per record, ``(group id, position of its first caption in the
        group)``; ``(None, 0)`` without groups or in test mode."""
        self.group_captions = []
        if self.caption_groups is None or self.test_mode:
            return [(None, 0)] * len(records)
        placed, group_of = [], {}
        for image_id, record in enumerate(records):
            key = record['pid'] if self.caption_groups == 'identity' \
                else ('image', image_id)
            if key not in group_of:
                group_of[key] = len(self.group_captions)
                self.group_captions.append([])
            group = self.group_captions[group_of[key]]
            placed.append((group_of[key], len(group)))
            group.extend(record['captions'])
        return placed

    def get_data_info(self, idx: int) -> dict:
        data_info = super().get_data_info(idx)
        data_info.update(benchmark=self.name, split=self.split)
        if data_info.get('group_id') is not None:
            data_info['group_captions'] = self.group_captions[
                data_info['group_id']]
        return data_info

    def _where(self, record: dict, index: int) -> str:
        return record.get('source') or (
            f'{type(self).__name__} ({self.split}) image record {index}')

    def check_captions(self, record: dict, index: int) -> None:
        """Raise ``ValueError`` unless the record's ``captions`` is a
        non-empty list of strings (see :meth:`empty_captions` for strings
        that say nothing)."""
        captions = record.get('captions')
        if not isinstance(captions, list) or not captions or not all(
                isinstance(c, str) for c in captions):
            raise ValueError(
                f'{self._where(record, index)} ({record.get("img_path")}), '
                'field "captions": needs a non-empty list of strings, got '
                f'{captions!r}')

    @staticmethod
    def empty_captions(record: dict) -> List[str]:
        """The record's captions that tokenise to nothing."""
        return [c for c in record['captions'] if tokenises_to_nothing(c)]

    @staticmethod
    def _keep_captions(record: dict, keep: List[bool]) -> dict:
        """``record`` with only the captions where ``keep`` is true, and
        their ``caption_annotations`` when it has them (aligned by
        position)."""
        record = dict(record, captions=[
            c for c, k in zip(record['captions'], keep) if k])
        if record.get('caption_annotations') is not None:
            record['caption_annotations'] = [
                a for a, k in zip(record['caption_annotations'], keep) if k]
        return record

    def drop_empty_captions(self, records: List[dict]) -> List[dict]:
        """``records`` without their captions that tokenise to nothing, and
        without the records left with none; a counted warning quotes the
        first few. With ``strict_captions`` they are an error.

        Raises:
            ValueError: ``strict_captions`` and such a caption exists.
        """
        kept, dropped, emptied = [], [], 0
        for index, record in enumerate(records):
            empty = self.empty_captions(record)
            if not empty:
                kept.append(record)
                continue
            dropped += [f'{self._where(record, index)}: {c!r}' for c in empty]
            keep = [c not in empty for c in record['captions']]
            if any(keep):
                kept.append(self._keep_captions(record, keep))
            else:
                emptied += 1
        if not dropped:
            return records
        quoted = '; '.join(dropped[:MAX_QUOTED])
        if self.strict_captions:
            raise ValueError(f'{len(dropped)} captions tokenise to nothing '
                             f'(strict_captions): {quoted}')
        print_log(
            f'{self.name} ({self.split}): dropped {len(dropped)} captions that'
            f' tokenise to nothing and {emptied} images left without '
            f'captions (e.g. {quoted}); strict_captions=True refuses them',
            logger='current', level=logging.WARNING)
        return kept

    def log_summary(self, num_ids: int, num_images: int,
                    num_captions: int) -> None:
        """Log a table of the split's identities, images and captions,
        with the published figures of the benchmark when they are known."""
        rows = [['split', 'identities', 'images', 'captions'],
                [self.split, num_ids, num_images, num_captions]]
        published = self.PUBLISHED_COUNTS.get(self.split)
        if published:
            rows.append([f'{self.split} (published)', *published])
        table = AsciiTable(rows, title=self.name)
        print_log('\n' + table.table, logger='current')


def leaves_folder(relative: str) -> bool:
    """Whether a path meant to be relative is absolute or climbs out of
    its folder with ``..`` (symbolic links are not resolved: a linked image
    folder is a normal layout)."""
    normal = osp.normpath(relative)
    return osp.isabs(relative) or normal == os.pardir or normal.startswith(
        os.pardir + os.sep)
