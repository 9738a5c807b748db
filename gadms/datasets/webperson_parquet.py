"""WebPerson's parquet form (the Hugging Face release), read on demand."""
import glob
import os.path as osp
import re
from typing import Dict, List, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gadms.common.formats import (ANNOTATION_COLUMNS, CAPTION_FIELDS,
                                  WEBPERSON_COLUMNS)
from gadms.common.progress import Progress
from .transforms.tokenizer import SURELY_TOKENISED_RE2, tokenises_to_nothing


class ParquetCorpus:
    """WebPerson as published on Hugging Face: parquet shards with columns
    ``image`` (``{bytes, path}`` struct or binary), ``image_path``,
    ``caption1`` and ``caption2``.

    Only the shard list and row-group boundaries stay in memory; a row is
    read on demand with its row group (the last few row groups are cached
    per process). Rows are numbered across shards in file-name order.

    Args:
        files (list[str]): Parquet shards, in row order.
        check_captions (bool): Scan every caption once on load (streamed):
            a null one is an error naming shard, row and field; those that
            tokenise to nothing are listed in ``empty_captions``.
        cache_row_groups (int): Row groups kept per process.

    Attributes:
        empty_captions (list[tuple[int, str]]): ``(row, description)`` of
            each caption that tokenises to nothing (found by the check).
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
        self.annotation_columns: Tuple[str, ...] = ()
        for index, file in enumerate(files):
            try:
                metadata = pq.read_metadata(file)
            except (pa.ArrowInvalid, OSError) as err:
                raise ValueError(f'{file}: not a readable parquet shard '
                                 f'(torn or corrupt: {err})') from err
            schema = metadata.schema.to_arrow_schema()
            self._check_schema(file, schema)
            annotated = tuple(c for c in ANNOTATION_COLUMNS
                              if c in schema.names)
            if index and annotated != self.annotation_columns:
                raise ValueError(
                    f'{file}: annotation columns {list(annotated)} differ '
                    f'from {list(self.annotation_columns)} of {files[0]}')
            self.annotation_columns = annotated
            group_sizes.append([
                metadata.row_group(i).num_rows
                for i in range(metadata.num_row_groups)
            ])
        self.group_starts = [np.cumsum([0] + sizes) for sizes in group_sizes]
        self.file_starts = np.cumsum(
            [0] + [starts[-1] for starts in self.group_starts])
        self.empty_captions: List[Tuple[int, str]] = []
        if check_captions:
            self._check_captions()

    @staticmethod
    def _check_schema(file: str, schema: pa.Schema) -> None:
        for column in WEBPERSON_COLUMNS:
            if column not in schema.names:
                raise ValueError(f'{file}: parquet shard has no column '
                                 f'{column!r} (has {schema.names})')
        for column in WEBPERSON_COLUMNS[1:]:
            kind = schema.field(column).type
            if not (pa.types.is_string(kind)
                    or pa.types.is_large_string(kind)):
                raise ValueError(f'{file}: column {column!r} must hold '
                                 f'strings, not {kind}')

    def _check_captions(self) -> None:
        """Refuse null captions; list those that tokenise to nothing (only
        captions without a letter or digit, or with an HTML entity, are
        tokenised to find out)."""
        progress = Progress(len(self), 'checking captions')
        for file_index, file in enumerate(self.files):
            row = 0
            for batch in pq.ParquetFile(file).iter_batches(
                    batch_size=1 << 16, columns=list(CAPTION_FIELDS)):
                for field in CAPTION_FIELDS:
                    self._check_column(batch[field], file, field, row,
                                       int(self.file_starts[file_index]))
                row += batch.num_rows
                progress.update(batch.num_rows)
        progress.close()

    def _check_column(self, captions: pa.Array, file: str, field: str,
                      first_row: int, file_start: int) -> None:
        nulls = np.flatnonzero(
            captions.is_null().to_numpy(zero_copy_only=False))
        if len(nulls):
            raise ValueError(f'{file}: row {first_row + int(nulls[0])} field '
                             f'{field!r} is null')
        suspect = pc.or_(
            pc.invert(pc.match_substring_regex(captions,
                                               SURELY_TOKENISED_RE2)),
            pc.match_substring(captions, '&'))
        for offset in np.flatnonzero(
                suspect.to_numpy(zero_copy_only=False)):
            caption = captions[int(offset)].as_py()
            if tokenises_to_nothing(caption):
                row = first_row + int(offset)
                self.empty_captions.append(
                    (file_start + row,
                     f'{file} row {row} field {field!r}: {caption!r}'))

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
                group,
                columns=list(WEBPERSON_COLUMNS + self.annotation_columns))
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
        image_path = table['image_path'][offset].as_py()
        if image_path is None:
            raise ValueError(f'{self.files[file_index]} row {local}, column '
                             '"image_path": null (every row needs its '
                             "image's path)")
        row = dict(
            image_path=image_path,
            captions=[table[f][offset].as_py() for f in CAPTION_FIELDS],
            img_bytes=image or b'',
            source=f'{self.files[file_index]} row {local}')
        if self.annotation_columns:
            row['caption_annotations'] = self._annotations(table, offset)
        return row

    def _annotations(self, table: pa.Table, offset: int) -> List[dict]:
        """Each caption's annotation dict from the annotation columns."""
        annotations = {field: {} for field in CAPTION_FIELDS}
        for column in self.annotation_columns:
            field, kind = ANNOTATION_COLUMNS[column]
            value = table[column][offset].as_py()
            if value is not None and kind == 'word_confidences':
                value = [[w['word'], w['confidence']] for w in value]
            if value is not None:
                annotations[field][kind] = value
        return [annotations[field] for field in CAPTION_FIELDS]

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
