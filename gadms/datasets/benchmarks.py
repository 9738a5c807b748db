import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from gadms.registry import DATASETS
from .base import TextPersonDataset


class RecordListDataset(TextPersonDataset):
    """A benchmark published as one JSON list of per-image records.

    Subclasses set the annotation file name, the field holding the image
    path and how training pids are derived from the raw ids:
    ``'minus_one'`` (1-based ids, checked contiguous), ``'as_is'`` (0-based,
    checked contiguous) or ``'relabel'`` (sorted raw ids mapped to 0..N-1).
    Val and test pids are the raw ids.

    Every check of the annotations lives here (:meth:`parse_record`,
    :meth:`shared_images`, :meth:`train_pids_of`);
    ``tools/misc/check_dataset.py`` calls the same methods, so it reports
    exactly what the reader refuses.

    Args:
        data_root (str): Dataset folder.
        split (str): One of ``SPLITS``.
        ann_file (str, optional): Annotation file relative to
            ``data_root``; defaults to ``ANN_FILE``.
        data_prefix (dict): ``img_path`` folder relative to ``data_root``.
        check_images (bool): Check on load that every image of the split
            exists, so a missing file fails at once, naming its record.
            Defaults to True.
        train_pids (str, optional): How training pids derive from the raw
            ids (see above); defaults to the benchmark's own rule
            (``TRAIN_PIDS``, as IRRA). ``'relabel'`` suits a custom split
            whose ids do not run 1..N.
        **kwargs: Passed to :class:`TextPersonDataset`.
    """

    ANN_FILE = ''
    PATH_FIELD = 'file_path'
    TRAIN_PIDS = 'minus_one'
    TRAIN_PID_RULES = ('minus_one', 'as_is', 'relabel')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 data_prefix: dict = dict(img_path='imgs'),
                 check_images: bool = True,
                 train_pids: Optional[str] = None,
                 **kwargs) -> None:
        self.check_images = check_images
        self.train_pids = train_pids or self.TRAIN_PIDS
        if self.train_pids not in self.TRAIN_PID_RULES:
            raise ValueError(f'{type(self).__name__}: train_pids must be one '
                             f'of {self.TRAIN_PID_RULES}, got {train_pids!r}')
        super().__init__(
            split=split,
            data_root=data_root,
            ann_file=ann_file or self.ANN_FILE,
            data_prefix=data_prefix,
            **kwargs)

    @property
    def field_types(self) -> Dict[str, type]:
        return {'split': str, 'captions': list, self.PATH_FIELD: str,
                'id': int}

    def read_records(self) -> list:
        """The annotation file's list of raw records."""
        annotations = self.read_json_annotations()
        if not isinstance(annotations, list):
            raise ValueError(f'{self.ann_file}: expected a list of records, '
                             f'got {type(annotations).__name__}')
        return annotations

    def check_record_fields(self, record, index: int) -> None:
        """Raise ``ValueError`` naming the file, record and field when a
        raw annotation record lacks a field, has a wrongly typed one or an
        unknown split."""
        if not isinstance(record, dict):
            raise ValueError(f'{self.ann_file}: record {index} is not an '
                             'object')
        for field, kind in self.field_types.items():
            if field not in record:
                raise ValueError(f'{self.ann_file}: record {index} has no '
                                 f'field "{field}"')
            # bool is an int subclass, but `"id": true` is no identity
            if not isinstance(record[field], kind) or (
                    kind is int and isinstance(record[field], bool)):
                raise ValueError(
                    f'{self.ann_file}: record {index} field "{field}" must '
                    f'be {kind.__name__}, got {record[field]!r}')
        if record['split'] not in self.SPLITS:
            raise ValueError(
                f'{self.ann_file}: record {index} field "split" is '
                f'{record["split"]!r}, expected one of {self.SPLITS}')

    def parse_record(self, raw, index: int) -> dict:
        """An annotation record as an image record (``img_path``, ``pid``,
        ``captions``, ``source``), after every check of its content:
        fields, split, image path inside the image folder, captions.

        Raises:
            ValueError: naming the file, record and field.
        """
        self.check_record_fields(raw, index)
        source = f'{self.ann_file} record {index}'
        record = dict(
            img_path=self.image_path(
                self.data_prefix['img_path'], raw[self.PATH_FIELD],
                f'{source}, field "{self.PATH_FIELD}"'),
            pid=raw['id'],
            captions=raw['captions'],
            split=raw['split'],
            source=source)
        self.check_captions(record, index)
        return record

    def shared_images(self, indexed_records: Sequence[Tuple[int, dict]]
                      ) -> List[str]:
        """One message per image that several records name (in any
        splits): such a file would be two gallery images, or a training
        image leaking into the test split.

        Args:
            indexed_records: ``(index in the file, raw record)`` pairs of
                records that passed :meth:`check_record_fields`.
        """
        records_of_path = defaultdict(list)
        for index, raw in indexed_records:
            records_of_path[osp.normpath(raw[self.PATH_FIELD])].append(index)
        return [f'{self.ann_file}: image {path} is named by records '
                f'{indices} (field "{self.PATH_FIELD}")'
                for path, indices in records_of_path.items()
                if len(indices) > 1]

    def load_image_records(self) -> List[dict]:
        raw_records = self.read_records()
        for index, raw in enumerate(raw_records):
            self.check_record_fields(raw, index)
        shared = self.shared_images(list(enumerate(raw_records)))
        if shared:
            more = f' and {len(shared) - 1} more' if len(shared) > 1 else ''
            raise ValueError(f'{shared[0]}{more}; each record must name its '
                             'own image')
        records = []
        for index, raw in enumerate(raw_records):
            if raw['split'] != self.split:
                continue
            record = self.parse_record(raw, index)
            del record['split']
            if self.check_images and not osp.isfile(record['img_path']):
                raise FileNotFoundError(
                    f'{record["source"]}, field "{self.PATH_FIELD}": image '
                    f'{record["img_path"]} does not exist')
            records.append(record)
        if self.split == 'train':
            for record, pid in zip(records, self.train_pids_of(
                    [r['pid'] for r in records])):
                record['pid'] = pid
        return records

    def train_pids_of(self, ids: List[int]) -> List[int]:
        """Training pids of the raw ``ids`` by the ``train_pids`` rule.

        Raises:
            ValueError: ``'minus_one'`` / ``'as_is'`` ids that do not run
                from 1 / 0 without gaps (the option to use instead named).
        """
        if self.train_pids == 'relabel':
            label = {pid: i for i, pid in enumerate(sorted(set(ids)))}
            return [label[pid] for pid in ids]
        first = 1 if self.train_pids == 'minus_one' else 0
        pids = [pid - first for pid in ids]
        unique = set(pids)
        if unique and unique != set(range(len(unique))):
            raise ValueError(
                f'{self.ann_file}: training ids must run from {first} '
                f'without gaps; got {len(unique)} ids from '
                f'{min(unique) + first} to {max(unique) + first} (for a '
                "custom split set train_pids='relabel')")
        return pids


@DATASETS.register_module()
class CUHKPEDES(RecordListDataset):
    """CUHK-PEDES in its published layout.

    ``<data_root>/reid_raw.json`` is a list of records ``{split, captions,
    file_path, id, processed_tokens}`` with images under
    ``<data_root>/imgs/<file_path>``. Identity ids are 1-based; training pids
    are ``id - 1`` (checked to be contiguous from 0), val and test pids are
    the raw ids (IRRA convention).

    Use in configs::

        dict(type='CUHKPEDES', data_root='data/CUHK-PEDES', split='test',
             pipeline=test_pipeline)
    """

    NAME = 'CUHK-PEDES'
    ANN_FILE = 'reid_raw.json'
    PUBLISHED_COUNTS = dict(
        train=(11003, 34054, 68126),
        val=(1000, 3078, 6158),
        test=(1000, 3074, 6156))


@DATASETS.register_module()
class ICFGPEDES(RecordListDataset):
    """ICFG-PEDES: ``ICFG-PEDES.json`` (name configurable through
    ``ann_file``; IRRA spells it ``ICFG_PEDES.json``) with the CUHK-PEDES
    record fields and ``imgs/{train,test}/...``. There is no val split;
    training ids are 0-based and used as given (checked contiguous).

    Use in configs::

        dict(type='ICFGPEDES', data_root='data/ICFG-PEDES', split='test',
             pipeline=test_pipeline)
    """

    NAME = 'ICFG-PEDES'
    SPLITS = ('train', 'test')
    ANN_FILE = 'ICFG-PEDES.json'
    PUBLISHED_COUNTS = dict(train=(3102, 34674, 34674),
                            test=(1000, 19848, 19848))
    TRAIN_PIDS = 'as_is'


@DATASETS.register_module()
class RSTPReid(RecordListDataset):
    """RSTPReid: ``data_captions.json`` records ``{id, img_path, captions,
    split}`` with images under ``imgs/``. Training ids are mapped to
    0..N-1 in sorted order; val and test keep the raw ids.

    Use in configs::

        dict(type='RSTPReid', data_root='data/RSTPReid', split='test',
             pipeline=test_pipeline)
    """

    NAME = 'RSTPReid'
    ANN_FILE = 'data_captions.json'
    PUBLISHED_COUNTS = dict(
        train=(3701, 18505, 37010),
        val=(200, 1000, 2000),
        test=(200, 1000, 2000))
    PATH_FIELD = 'img_path'
    TRAIN_PIDS = 'relabel'
