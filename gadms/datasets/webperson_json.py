"""WebPerson's JSON form (the released code's annotation file)."""
from typing import Dict, List, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gadms.common.formats import CAPTION_FIELDS
from .transforms.tokenizer import tokenises_to_nothing


class JsonCorpus:
    """WebPerson in the JSON form of the released code, held column-wise.

    The file is a list of single-key objects ``{"<path under images/>":
    {"caption1": str, "caption2": str}}``; rows are sorted by path as in
    the released loader. After parsing, paths and captions live in Arrow
    arrays (a few bytes of overhead per row, shared by forked workers)
    instead of millions of Python objects.

    Attributes:
        empty_captions (list[tuple[int, str]]): ``(row, description)`` of
            each caption that tokenises to nothing.
    """

    def __init__(self, ann_file: str, entries: list) -> None:
        self.ann_file = ann_file
        if not isinstance(entries, list):
            raise ValueError(f'{ann_file}: expected a list of entries, got '
                             f'{type(entries).__name__}')
        first_entry: Dict[str, int] = {}
        captions: Dict[str, List[str]] = {k: [] for k in CAPTION_FIELDS}
        empty: List[Tuple[int, str]] = []
        for index, entry in enumerate(entries):
            path, entry_captions = self._check_entry(entry, index)
            if path in first_entry:
                raise ValueError(
                    f'{ann_file}: entry {index} repeats image {path} of '
                    f'entry {first_entry[path]}')
            first_entry[path] = index
            for field in CAPTION_FIELDS:
                captions[field].append(entry_captions[field])
                if tokenises_to_nothing(entry_captions[field]):
                    empty.append((index, f'{ann_file} entry {index} ({path}) '
                                  f'field {field!r}: '
                                  f'{entry_captions[field]!r}'))
        by_path = pc.sort_indices(pa.array(list(first_entry), pa.string()))
        self.paths = pa.array(list(first_entry), pa.string()).take(by_path)
        self.captions = {
            field: pa.array(values, pa.string()).take(by_path)
            for field, values in captions.items()
        }
        # entries are unique, so an entry's index is its insertion rank
        self.entry_index = by_path.to_numpy()
        row_of_entry = np.empty(len(self.entry_index), dtype=np.int64)
        row_of_entry[self.entry_index] = np.arange(len(self.entry_index))
        self.empty_captions = [(int(row_of_entry[entry]), description)
                               for entry, description in empty]

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
            if not isinstance(caption, str):
                raise ValueError(
                    f'{self.ann_file}: entry {index} ({path}) field '
                    f'{field!r} must be a string, got {caption!r}')
        return path, captions

    def __len__(self) -> int:
        return len(self.paths)

    def row(self, index: int) -> dict:
        return dict(
            image_path=self.paths[index].as_py(),
            captions=[self.captions[f][index].as_py()
                      for f in CAPTION_FIELDS],
            source=f'{self.ann_file} entry {self.entry_index[index]}')
