"""Every file gadms writes, written atomically: a temporary name beside the
target, then one rename over it.

A reader never sees a torn file under the real name, and a writer killed or
failing half-way leaves the previous file intact. The temporary name is the
target's with ``.part`` appended (the runner removes the ``*.part`` files an
interrupted save left in its work dir); it is removed when writing fails.

- :func:`atomic_write`: an open file object (text or binary);
- :func:`atomic_path`: a temporary path, for writers that take a file name
  (``pyarrow.parquet.write_table``, ``torch.save``);
- :func:`write_json`, :func:`write_bytes`, :func:`write_image`,
  :func:`write_parquet`, :func:`atomic_torch_save`: the kinds of file gadms
  writes, built on them; :func:`parquet_stream`: a parquet file written
  row group by row group;
- :func:`atomic_folder`, :func:`replace_folder`: a folder built whole (a
  corpus stage's listing or buckets) appears whole or not at all.
"""
import contextlib
import json
import os
import shutil
from typing import IO, Any, Callable, Iterator, Optional

PART_SUFFIX = '.part'


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path for a writer to write ``path``'s new content
    to; on a clean exit it replaces ``path`` in one rename, on an error it
    is removed and ``path`` keeps its previous content.

    Example::

        >>> with atomic_path('shard.parquet') as part:
        ...     pq.write_table(table, part)
    """
    part = path + PART_SUFFIX
    try:
        yield part
        os.replace(part, path)
    finally:
        if os.path.lexists(part):
            os.remove(part)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w',
                 encoding: str = 'utf-8') -> Iterator[IO]:
    """``open(path, mode)`` whose content replaces ``path`` only when the
    block ends without an error (``mode`` ``'w'`` or ``'wb'``; text in
    ``encoding``)."""
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w'"
                         f" or 'wb', got {mode!r}")
    with atomic_path(path) as part:
        with open(part, mode, **({} if 'b' in mode else
                                 dict(encoding=encoding))) as f:
            yield f


def write_json(path: str, content: Any, indent: Optional[int] = None) -> None:
    """Write ``content`` to ``path`` as JSON (UTF-8), atomically."""
    with atomic_write(path) as f:
        json.dump(content, f, indent=indent)


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``, atomically."""
    with atomic_write(path, 'wb') as f:
        f.write(data)


@contextlib.contextmanager
def parquet_stream(path: str, schema) -> Iterator[Callable[[Any], None]]:
    """Yield a function that appends a ``pyarrow.Table`` of ``schema`` to
    the parquet file ``path`` as a row group (``ParquetWriter``), so that
    a large file need not be held in memory; the file gets its name when
    the block ends without an error (an empty file if nothing was
    appended).

    Example::

        >>> with parquet_stream('images.parquet', schema) as append:
        ...     for table in tables:
        ...         append(table)
    """
    import pyarrow.parquet as pq
    with atomic_path(path) as part:
        with pq.ParquetWriter(part, schema) as writer:
            yield writer.write_table


def write_parquet(table, path: str, **kwargs) -> None:
    """``pyarrow.parquet.write_table(table, path, **kwargs)``,
    atomically."""
    import pyarrow.parquet as pq
    with atomic_path(path) as part:
        pq.write_table(table, part, **kwargs)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, atomically."""
    import torch
    with atomic_path(path) as part:
        torch.save(obj, part)


def write_image(path: str, image) -> None:
    """Encode ``image`` (``[H, W, 3]`` BGR uint8, as OpenCV) in the format
    of ``path``'s extension and write it atomically.

    Raises:
        OSError: OpenCV cannot encode it in that format.
    """
    import cv2
    ok, encoded = cv2.imencode(os.path.splitext(path)[1], image)
    if not ok:
        raise OSError(f'could not encode an image for {path}')
    write_bytes(path, encoded.tobytes())


def replace_folder(new: str, path: str) -> None:
    """Make folder ``new`` the folder ``path``: an existing ``path`` is
    moved aside to ``path + '.old'`` first and removed after, so ``path``
    is at any moment the old folder, the new one or (between two renames)
    absent, never a mix."""
    old = path + '.old'
    shutil.rmtree(old, ignore_errors=True)
    if os.path.lexists(path):
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str, part: Optional[str] = None) -> Iterator[str]:
    """Yield an empty temporary folder to build ``path``'s content in; on
    a clean exit it becomes ``path`` (:func:`replace_folder`), on an error
    it is removed and ``path`` is left as it was. The temporary folder is
    ``part``, by default ``path`` + ``.part`` (give another on the same
    file system when readers list ``path``'s parent folder)."""
    part = part or path + PART_SUFFIX
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    try:
        yield part
        replace_folder(part, path)
    finally:
        shutil.rmtree(part, ignore_errors=True)
