import glob
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.registry import DATASETS
from gadms.utils.progress import Progress
from .base import TextPersonDataset

CAPTION_FIELDS = ('caption1', 'caption2')
PARQUET_COLUMNS = ('image', 'image_path') + CAPTION_FIELDS


class JsonCorpus:
    """WebPerson in the JSON form of the released code, held column-wise.

    The file is a list of single-key objects ``{"<path under images/>":
    {"caption1": str, "caption2": str}}``; rows are sorted by path as in
    the released loader. After parsing, paths and captions live in Arrow
    arrays (a few bytes of overhead per row, shared by forked workers)
    instead of millions of Python objects.
    """

    def __init__(self, ann_file: str, entries: list) -> None:
        self.ann_file = ann_file
        if not isinstance(entries, list):
            raise ValueError(f'{ann_file}: expected a list of entries, got '
                             f'{type(entries).__name__}')
        first_entry: Dict[str, int] = {}
        captions: Dict[str, List[str]] = {k: [] for k in CAPTION_FIELDS}
        for index, entry in enumerate(entries):
            path, entry_captions = self._check_entry(entry, index)
            if path in first_entry:
                raise ValueError(
                    f'{ann_file}: entry {index} repeats image {path} of '
                    f'entry {first_entry[path]}')
            first_entry[path] = index
            for field in CAPTION_FIELDS:
                captions[field].append(entry_captions[field])
        by_path = pc.sort_indices(pa.array(list(first_entry), pa.string()))
        self.paths = pa.array(list(first_entry), pa.string()).take(by_path)
        self.captions = {
            field: pa.array(values, pa.string()).take(by_path)
            for field, values in captions.items()
        }
        # entries are unique, so an entry's index is its insertion rank
        self.entry_index = by_path.to_numpy()

    def _check_entry(self, entry, index: int) -> Tuple[str, dict]:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f'{self.ann_file}: entry {index} must be an '
                             'object with exactly one image path')
        (path, captions), = entry.items()
        if not isinstance(captions, dict):
            raise ValueError(f'{self.ann_file}: entry {index} ({path}) must '
                             'map the path to {"caption1", "caption2"}')
        for field in CAPTION_FIELDS:
            if field not in captions:
                raise ValueError(f'{self.ann_file}: entry {index} ({path}) '
                                 f'has no field {field!r}')
            caption = captions[field]
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError(
                    f'{self.ann_file}: entry {index} ({path}) field '
                    f'{field!r} must be a non-empty string, got {caption!r}')
        return path, captions

    def __len__(self) -> int:
        return len(self.paths)

    def row(self, index: int) -> dict:
        return dict(
            image_path=self.paths[index].as_py(),
            captions=[self.captions[f][index].as_py()
                      for f in CAPTION_FIELDS],
            source=f'{self.ann_file} entry {self.entry_index[index]}')


class ParquetCorpus:
    """WebPerson as published on Hugging Face: parquet shards with columns
    ``image`` (``{bytes, path}`` struct or binary), ``image_path``,
    ``caption1`` and ``caption2``.

    Only the shard list and row-group boundaries stay in memory; a row is
    read on demand with its row group (the last few row groups are cached
    per process). Rows are numbered across shards in file-name order.

    Args:
        files (list[str]): Parquet shards, in row order.
        check_captions (bool): Scan every caption once on load (streamed)
            and fail on a null, non-string or blank one.
        cache_row_groups (int): Row groups kept per process.
    """

    def __init__(self,
                 files: List[str],
                 check_captions: bool = True,
                 cache_row_groups: int = 4) -> None:
        self.files = files
        self.cache_size = cache_row_groups
        self._readers: Dict[int, pq.ParquetFile] = {}
        self._cache: Dict[Tuple[int, int], pa.Table] = {}
        group_sizes = []
        for file in files:
            try:
                metadata = pq.read_metadata(file)
            except (pa.ArrowInvalid, OSError) as err:
                raise ValueError(f'{file}: not a readable parquet shard '
                                 f'(torn or corrupt: {err})') from err
            self._check_schema(file, metadata.schema.to_arrow_schema())
            group_sizes.append([
                metadata.row_group(i).num_rows
                for i in range(metadata.num_row_groups)
            ])
        self.group_starts = [np.cumsum([0] + sizes) for sizes in group_sizes]
        self.file_starts = np.cumsum(
            [0] + [starts[-1] for starts in self.group_starts])
        if check_captions:
            self._check_captions()

    @staticmethod
    def _check_schema(file: str, schema: pa.Schema) -> None:
        for column in PARQUET_COLUMNS:
            if column not in schema.names:
                raise ValueError(f'{file}: parquet shard has no column '
                                 f'{column!r} (has {schema.names})')
        for column in PARQUET_COLUMNS[1:]:
            kind = schema.field(column).type
            if not (pa.types.is_string(kind)
                    or pa.types.is_large_string(kind)):
                raise ValueError(f'{file}: column {column!r} must hold '
                                 f'strings, not {kind}')

    def _check_captions(self) -> None:
        progress = Progress(len(self), 'checking captions')
        for file_index, file in enumerate(self.files):
            row = 0
            for batch in pq.ParquetFile(file).iter_batches(
                    batch_size=1 << 16, columns=list(CAPTION_FIELDS)):
                for field in CAPTION_FIELDS:
                    blank = pc.fill_null(
                        pc.equal(
                            pc.utf8_length(
                                pc.utf8_trim_whitespace(batch[field])), 0),
                        True)
                    if pc.any(blank).as_py():
                        bad = row + int(np.flatnonzero(
                            blank.to_numpy(zero_copy_only=False))[0])
                        raise ValueError(
                            f'{file}: row {bad} field {field!r} is empty or '
                            f'null: {batch[field][bad - row].as_py()!r}')
                row += batch.num_rows
                progress.update(batch.num_rows)
        progress.close()

    def __len__(self) -> int:
        return int(self.file_starts[-1])

    def _row_group(self, file_index: int, group: int) -> pa.Table:
        key = (file_index, group)
        if key not in self._cache:
            if file_index not in self._readers:
                self._readers[file_index] = pq.ParquetFile(
                    self.files[file_index])
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._readers[file_index].read_row_group(
                group, columns=list(PARQUET_COLUMNS))
        return self._cache[key]

    def row(self, index: int) -> dict:
        file_index = int(np.searchsorted(self.file_starts, index, 'right')) - 1
        local = index - int(self.file_starts[file_index])
        starts = self.group_starts[file_index]
        group = int(np.searchsorted(starts, local, 'right')) - 1
        table = self._row_group(file_index, group)
        offset = local - int(starts[group])
        image = table['image'][offset].as_py()
        if isinstance(image, dict):
            image = image.get('bytes')
        return dict(
            image_path=table['image_path'][offset].as_py(),
            captions=[table[f][offset].as_py() for f in CAPTION_FIELDS],
            img_bytes=image or b'',
            source=f'{self.files[file_index]} row {local}')

    def __getstate__(self) -> dict:
        # open file handles are per process
        return dict(self.__dict__, _readers={}, _cache={})


SHARD_NAME = re.compile(
    r'^(?P<name>.+)-(?P<index>\d+)-of-(?P<total>\d+)\.parquet$')


def parquet_shards(pattern: str) -> List[str]:
    """Sorted ``*.parquet`` files of a folder, a glob or a single file.

    Shards named ``NAME-XXXXX-of-YYYYY.parquet`` (Hugging Face's and
    gadms's exports) must form complete sets: a missing one (an export or
    download that did not finish) is an error naming it.
    """
    if osp.isdir(pattern):
        pattern = osp.join(pattern, '**', '*.parquet')
    files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise FileNotFoundError(f'no parquet shards match {pattern}')
    sets: Dict[Tuple[str, int, int], set] = {}
    for file in files:
        match = SHARD_NAME.match(osp.basename(file))
        if match:
            key = (osp.dirname(file), match['name'], int(match['total']))
            sets.setdefault(key, set()).add(int(match['index']))
    for (folder, name, total), present in sets.items():
        missing = sorted(set(range(total)) - present)
        if missing:
            names = ', '.join(f'{name}-{i:05d}-of-{total:05d}.parquet'
                              for i in missing[:5])
            raise FileNotFoundError(
                f'{folder}: incomplete parquet shard set, {len(missing)} of '
                f'{total} missing ({names}); an export or download did not '
                'finish')
    return files


@DATASETS.register_module()
class WebPerson(TextPersonDataset):
    """WebPerson pretraining corpus, in either published form.

    - **JSON** (``ann_file`` ends with ``.json``): the released code's list
      of ``{"<path under images/>": {"caption1", "caption2"}}``, images
      read from ``data_prefix['img_path']``; images sorted by path.
    - **Parquet** (``ann_file`` is a shard, a folder of shards or a glob):
      the Hugging Face release, images stored in the shards; rows in
      shard-name order. Memory stays bounded: rows are read on demand.

    Each image gives two training samples, ``2 * i`` (caption1) and
    ``2 * i + 1`` (caption2), with pid ``i``; these sample indices are
    stable and address the GA-DMS score bank. Training split only.

    Args:
        data_root (str): Corpus folder.
        ann_file (str): JSON file, or parquet shard / folder / glob,
            relative to ``data_root``.
        data_prefix (dict): ``img_path`` folder of the JSON form.
        subset (dict, optional): ``dict(num_images=100_000, seed=0)`` keeps
            that many images drawn at random; for one seed a smaller subset
            is contained in a larger one. Kept images stay in corpus order.
        check_captions (bool): Check every caption once on load.
        **kwargs: Passed to :class:`TextPersonDataset`.

    Use in configs::

        dict(type='WebPerson', data_root='data/WebPerson', ann_file='data',
             subset=dict(num_images=1_000_000, seed=0),
             pipeline=train_pipeline)
    """

    NAME = 'WebPerson'
    SPLITS = ('train', )

    def __init__(self,
                 data_root: str,
                 ann_file: str = 'annotations.json',
                 data_prefix: dict = dict(img_path='images'),
                 subset: Optional[dict] = None,
                 check_captions: bool = True,
                 **kwargs) -> None:
        if kwargs.get('indices') is not None:
            raise ValueError('WebPerson: select images with subset=dict('
                             'num_images=..., seed=...), not indices')
        self.subset = subset
        self.check_captions = check_captions
        super().__init__(
            split='train',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=data_prefix,
            **kwargs)

    @property
    def is_json(self) -> bool:
        return self.ann_file.endswith('.json')

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self._join_prefix()
        if self.is_json:
            self.corpus = JsonCorpus(self.ann_file,
                                     self.read_json_annotations())
            self._check_paths_stay_inside()
        else:
            self.corpus = ParquetCorpus(
                parquet_shards(self.ann_file), self.check_captions)
        self.rows = self._select_rows(len(self.corpus))
        self.log_summary(len(self.rows), len(self.rows), 2 * len(self.rows))
        self._fully_initialized = True

    def _check_paths_stay_inside(self) -> None:
        """Refuse a JSON entry whose image path leaves the image folder
        (unless ``allow_outside_root``); only paths that start with ``/``
        or hold a ``..`` segment are looked at one by one."""
        paths = self.corpus.paths
        suspect = pc.or_(pc.starts_with(paths, '/'),
                         pc.match_substring_regex(paths, r'(^|/)\.\.(/|$)'))
        for row in np.flatnonzero(suspect.to_numpy(zero_copy_only=False)):
            row = self.corpus.row(int(row))
            self.image_path(self.data_prefix['img_path'], row['image_path'],
                            row['source'])

    def _select_rows(self, num_rows: int) -> np.ndarray:
        if self.subset is None:
            return np.arange(num_rows)
        unknown = set(self.subset) - {'num_images', 'seed'}
        num_images = self.subset.get('num_images')
        if unknown or not isinstance(num_images, int):
            raise ValueError(f'WebPerson: subset must be dict(num_images='
                             f'int, seed=int), got {self.subset}')
        if not 0 < num_images <= num_rows:
            raise ValueError(f'WebPerson: subset of {num_images} images '
                             f'from a corpus of {num_rows}')
        order = np.random.default_rng(self.subset.get('seed', 0)).permutation(
            num_rows)
        return np.sort(order[:num_images])

    def __len__(self) -> int:
        return 2 * len(self.rows)

    def sample_pids(self) -> np.ndarray:
        return np.arange(len(self)) // 2

    def get_data_info(self, idx: int) -> dict:
        if idx < 0:
            idx += len(self)
        image_idx, caption_idx = divmod(idx, 2)
        row = self.corpus.row(int(self.rows[image_idx]))
        folder = self.data_prefix['img_path'] if self.is_json else ''
        data_info = dict(
            img_path=osp.join(folder, row['image_path']),
            pid=image_idx,
            image_id=image_idx,
            captions=[row['captions'][caption_idx]],
            caption_idx=caption_idx,
            sample_idx=idx,
            source=row['source'],
            benchmark=self.name,
            split=self.split)
        if 'img_bytes' in row:
            data_info['img_bytes'] = row['img_bytes']
        return data_info
