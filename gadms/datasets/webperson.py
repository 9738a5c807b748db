import logging
import os.path as osp
from typing import Optional

import numpy as np
import pyarrow.compute as pc
from mmengine.logging import print_log

from gadms.common.formats import WEBPERSON_JSON_NAME
from gadms.registry import DATASETS
from .base import MAX_QUOTED, TextPersonDataset
from .webperson_json import JsonCorpus
from .webperson_parquet import ParquetCorpus, parquet_shards

# whose identity a caption carries: its image's, or its own
IDENTITIES = ('image', 'caption')


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
    ``2 * i + 1`` (caption2); these sample indices are stable and address
    the GA-DMS score bank. Their identity (pid) is the image's, ``i``, so
    that the two captions of an image are SDM positives of each other, as
    in the released code (webreid.py, whose pids are ``2 * i``: the same
    partition). With ``identity='caption'`` it is the sample's own index,
    so sibling captions are negatives: an ablation, not the released
    behaviour. Training split only.

    Args:
        data_root (str): Corpus folder.
        ann_file (str): JSON file, or parquet shard / folder / glob,
            relative to ``data_root``.
        data_prefix (dict): ``img_path`` folder of the JSON form.
        subset (dict, optional): ``dict(num_images=100_000, seed=0)`` keeps
            that many images drawn at random; for one seed a smaller subset
            is contained in a larger one. Kept images stay in corpus order.
        identity (str): ``'image'`` (default, the released code's): one
            pid per image; ``'caption'``: one pid per caption (ablation).
        caption_groups (str, optional): ``'image'`` or ``'identity'``:
            each sample carries its image's captions as ``group_captions``
            (for ``ConsensusTokens``); with ``identity='caption'`` an
            identity's group is the caption alone.
        check_captions (bool): Check every caption once on load: a null
            one is an error; an image with a caption that tokenises to
            nothing is dropped with a counted warning (an error with
            ``strict_captions=True``).
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
                 ann_file: str = WEBPERSON_JSON_NAME,
                 data_prefix: dict = dict(img_path='images'),
                 subset: Optional[dict] = None,
                 identity: str = 'image',
                 check_captions: bool = True,
                 **kwargs) -> None:
        if kwargs.get('indices') is not None:
            raise ValueError('WebPerson: select images with subset=dict('
                             'num_images=..., seed=...), not indices')
        if identity not in IDENTITIES:
            raise ValueError(f'WebPerson: identity must be one of '
                             f'{IDENTITIES}, got {identity!r}')
        self.subset = subset
        self.identity = identity
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
        if self.is_json:
            self.corpus = JsonCorpus(self.ann_file,
                                     self.read_json_annotations())
            self._check_paths_stay_inside()
        else:
            self.corpus = ParquetCorpus(
                parquet_shards(self.ann_file), self.check_captions)
        self.rows = self._drop_empty_captions(
            self._select_rows(len(self.corpus)))
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

    def _drop_empty_captions(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` without the images that have a caption that tokenises
        to nothing (both captions go: samples come in pairs).

        Raises:
            ValueError: ``strict_captions`` and such a caption exists.
        """
        empty = self.corpus.empty_captions
        if not empty:
            return rows
        quoted = '; '.join(d for _, d in empty[:MAX_QUOTED])
        if self.strict_captions:
            raise ValueError(f'{len(empty)} captions tokenise to nothing '
                             f'(strict_captions): {quoted}')
        kept = rows[~np.isin(rows, [row for row, _ in empty])]
        print_log(
            f'WebPerson: dropped {len(rows) - len(kept)} images with captions'
            f' that tokenise to nothing ({len(empty)} captions in the corpus,'
            f' e.g. {quoted}); strict_captions=True refuses them',
            logger='current', level=logging.WARNING)
        return kept

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
        return np.arange(len(self)) // self._samples_per_pid

    @property
    def _samples_per_pid(self) -> int:
        return 2 if self.identity == 'image' else 1

    def _group_of(self, captions: list, caption_idx: int) -> dict:
        """``group_captions`` and ``group_index`` of a sample under
        ``caption_groups``, read from its own row (bounded memory at any
        corpus size): an image's group is its two captions, and so is its
        identity's unless ``identity='caption'``."""
        if self.caption_groups is None:
            return {}
        if self.caption_groups == 'identity' and self.identity == 'caption':
            return dict(group_captions=[captions[caption_idx]],
                        group_index=0)
        return dict(group_captions=list(captions), group_index=caption_idx)

    def get_data_info(self, idx: int) -> dict:
        if idx < 0:
            idx += len(self)
        image_idx, caption_idx = divmod(idx, 2)
        row = self.corpus.row(int(self.rows[image_idx]))
        folder = self.data_prefix['img_path'] if self.is_json else ''
        data_info = dict(
            img_path=osp.join(folder, row['image_path']),
            pid=idx // self._samples_per_pid,
            image_id=image_idx,
            captions=[row['captions'][caption_idx]],
            caption_idx=caption_idx,
            sample_idx=idx,
            source=row['source'],
            benchmark=self.name,
            split=self.split)
        data_info.update(self._group_of(row['captions'], caption_idx))
        if 'img_bytes' in row:
            data_info['img_bytes'] = row['img_bytes']
        if 'caption_annotations' in row:
            data_info['caption_annotations'] = row['caption_annotations']
        return data_info
