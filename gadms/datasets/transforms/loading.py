import fcntl
import json
import logging
import os
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import MMLogger, print_log

from gadms.common.atomic import atomic_write
from gadms.common.image_limits import (DEFAULT_MAX_PIXELS, ImageLoadError,
                                       check_decoded_size)
from gadms.registry import TRANSFORMS

SKIPPED_LIST_NAME = 'skipped_images.jsonl'


def default_skipped_list() -> str:
    """``skipped_images.jsonl`` next to the current MMEngine log file (the
    run's log dir), or in the working directory outside a Runner."""
    for handler in MMLogger.get_current_instance().handlers:
        if isinstance(handler, logging.FileHandler):
            return osp.join(osp.dirname(handler.baseFilename),
                            SKIPPED_LIST_NAME)
    return osp.abspath(SKIPPED_LIST_NAME)


def record_skipped_image(list_file: str, path: str, reason: str) -> int:
    """Add ``path`` to ``list_file`` (JSON Lines, one ``{"path", "reason"}``
    object per skipped image, so reasons may hold any character) unless
    listed; returns the new count, or 0 when it was listed already.

    A lock (``list_file + '.lock'``) is held while the list is read and
    rewritten, so data loader workers of all ranks can share it and every
    path is listed and logged once; the list is rewritten atomically, so a
    worker killed while writing leaves the previous list whole.
    """
    os.makedirs(osp.dirname(osp.abspath(list_file)), exist_ok=True)
    lock = os.open(list_file + '.lock', os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = []
        if osp.exists(list_file):
            with open(list_file, encoding='utf-8') as f:
                lines = [line for line in f if line.strip()]
        if path in (json.loads(line)['path'] for line in lines):
            return 0
        lines.append(json.dumps(dict(path=path, reason=reason)) + '\n')
        with atomic_write(list_file) as f:
            f.writelines(lines)
        return len(lines)
    finally:
        os.close(lock)  # releases the lock


@TRANSFORMS.register_module()
class LoadPersonImage(BaseTransform):
    """Read and decode a person image, from bytes or from a file.

    **Required Keys:** ``img_path``; ``img_bytes`` when the dataset holds
    the encoded image itself (WebPerson parquet shards); ``source``
    (optional, where the sample was read from, used in errors).

    **Added Keys:** ``img`` (np.ndarray uint8 ``[H, W, 3]``, BGR),
    ``img_shape``, ``ori_shape``. ``img_bytes`` is removed.

    A missing or undecodable image, or one whose header says it decodes to
    more than ``max_pixels`` pixels, raises :class:`ImageLoadError` naming
    the image, the annotation record it comes from and the field. With
    ``on_error='skip'`` (for web-scale training corpora) the sample is
    dropped instead: ``BaseDataset`` then draws another one, and the path
    is logged once and appended to ``skipped_list``. Skipping is for
    training only: a test dataset refuses it (a gallery must be whole).

    Args:
        on_error (str): ``'raise'`` (default) or ``'skip'``.
        skipped_list (str, optional): File listing skipped images (JSON
            Lines: ``{"path", "reason"}`` each). Defaults to
            ``skipped_images.jsonl`` in the run's log folder.
        backend_args (dict, optional): MMEngine file backend arguments.
        max_pixels (int): Largest decoded image accepted (width x height),
            checked on the encoded header before decoding. Defaults to
            100 megapixels.
    """

    def __init__(self,
                 on_error: str = 'raise',
                 skipped_list: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got "
                             f'{on_error!r}')
        self.on_error = on_error
        self.skipped_list = skipped_list
        self.backend_args = backend_args
        self.max_pixels = max_pixels

    def transform(self, results: dict) -> Optional[dict]:
        try:
            img = self._load(results)
        except ImageLoadError as err:
            if self.on_error == 'raise':
                raise
            self._skip(results['img_path'], str(err))
            return None
        results.update(img=img, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2])
        return results

    def _load(self, results: dict) -> np.ndarray:
        path = results['img_path']
        source = results.get('source', 'sample')
        if 'img_bytes' in results:
            img_bytes = results.pop('img_bytes')
            where = f'{source}, field "image" ({path})'
            if not img_bytes:
                raise ImageLoadError(f'{where}: no image bytes')
        else:
            where = f'{source}, field "img_path"'
            try:
                img_bytes = get(path, backend_args=self.backend_args)
            except FileNotFoundError as err:
                raise ImageLoadError(
                    f'{where}: image {path} does not exist') from err
        check_decoded_size(img_bytes, self.max_pixels,
                           f'{where}: image {path}')
        try:
            img = mmcv.imfrombytes(img_bytes, flag='color',
                                   channel_order='bgr')
        except Exception as err:  # decoders raise many kinds of errors
            raise ImageLoadError(f'{where}: image {path} cannot be decoded '
                                 f'({err})') from err
        if img is None:
            raise ImageLoadError(f'{where}: image {path} cannot be decoded')
        return img

    def _skip(self, path: str, reason: str) -> None:
        list_file = self.skipped_list or default_skipped_list()
        count = record_skipped_image(list_file, path, reason)
        if count:
            print_log(
                f'skipped image {count} ({reason}); listed in {list_file}',
                logger='current', level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(on_error={self.on_error!r}, '
                f'skipped_list={self.skipped_list!r})')
