"""The search behind ``tools/serve.py``: one model, one gallery, one worker
thread that runs every request, searches batched.

Requests from many users are queued (a bounded queue: past it, a request
is refused as busy) and run by a single thread, so the machine's cores
serve one model call at a time instead of being shared by several; the
text queries waiting at once are encoded and searched as one batch.

Every refusal is a :class:`ServiceError`: one sentence and an HTTP status.
"""
import hashlib
import logging
import os
import os.path as osp
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from gadms.apis.gallery import GalleryIndex
from gadms.apis.token_view import word_view
from gadms.common.atomic import write_bytes
from gadms.common.formats import IMAGE_EXTENSIONS
from gadms.common.image_limits import (DEFAULT_MAX_PIXELS, ImageLoadError,
                                       check_decoded_size)
from gadms.datasets.transforms import tokenises_to_nothing

logger = logging.getLogger(__name__)
# the folder, inside the gallery folder, that uploaded images go to
UPLOAD_FOLDER = 'uploads'
# how image bytes are labelled, by file extension
MEDIA_TYPES = {'.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
               '.png': 'image/png', '.bmp': 'image/bmp',
               '.webp': 'image/webp'}


class ServiceError(Exception):
    """A request refused: ``message`` (one sentence) and an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    """What one request may ask for.

    Attributes:
        max_query_chars (int): Longest query (characters); CLIP reads 77
            tokens, about 300 characters of English.
        max_topk (int): Most results per search.
        max_upload_bytes (int): Largest uploaded image (encoded; the app
            stops reading a request body past it).
        max_pixels (int): Largest uploaded image (decoded pixels).
        max_batch (int): Most queued searches run as one batch.
        max_waiting (int): Most requests queued before new ones are
            refused as busy.
    """

    max_query_chars: int = 300
    max_topk: int = 50
    max_upload_bytes: int = 10 << 20
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch: int = 32
    max_waiting: int = 256


@dataclass
class _Search:
    query: str
    topk: int
    future: Future


class GalleryService:
    """Search, explain and grow one gallery with one model.

    Args:
        inferencer (TextPersonInferencer): The model.
        index (GalleryIndex): The gallery; images are served from its
            gallery folder (``index.root``) or, for a dataset split, by
            ``read_image``.
        scorer (nn.Module): The token scorer of the word view.
        limits (Limits): What a request may ask for.
        captions (list[list[str]], optional): Each image's captions (a
            dataset split's).
        read_image (callable, optional): ``row -> (bytes, media type)`` for
            an index without a gallery folder.
        save_to (str, optional): Save the index here after each addition.
    """

    def __init__(self, inferencer, index: GalleryIndex, scorer,
                 limits: Limits = Limits(),
                 captions: Optional[List[List[str]]] = None,
                 read_image: Optional[Callable[[int], Tuple[bytes,
                                                            str]]] = None,
                 save_to: Optional[str] = None) -> None:
        if index.root is None and read_image is None:
            raise ValueError('an index without a gallery folder needs '
                             'read_image to show its images')
        self.inferencer, self.index, self.scorer = inferencer, index, scorer
        self.limits, self.captions = limits, captions
        self._read_image, self._save_to = read_image, save_to
        self._requests: queue.Queue = queue.Queue(limits.max_waiting)
        self._worker = threading.Thread(target=self._serve, daemon=True,
                                        name='gallery-service')
        self._worker.start()

    # --- requests: each returns a Future, answered by the worker thread

    def search(self, query: str, topk: int) -> Future:
        """The ``topk`` best images for ``query``: a list of
        ``dict(rank, row, score, pid, captions)``."""
        query = self.check_query(query)
        if not 1 <= topk <= min(self.limits.max_topk, len(self.index)):
            raise ServiceError(
                f'the number of results must be between 1 and '
                f'{min(self.limits.max_topk, len(self.index))}, not {topk}')
        return self._queue(_Search(query, topk, Future()))

    def words(self, row: int, query: str) -> Future:
        """Each word of ``query`` with its part in the match with image
        ``row`` (:func:`gadms.apis.token_view.word_view`)."""
        query = self.check_query(query)
        self.check_row(row)
        return self._call(lambda: self._words(row, query))

    def add_folder(self, folder: str) -> Future:
        """Index the images of ``folder`` (inside the gallery folder) that
        the index does not hold yet: ``dict(added, skipped, images)``."""
        self._check_growable()
        return self._call(lambda: self._add_folder(folder))

    def add_upload(self, name: str, data: bytes) -> Future:
        """Save an uploaded image into the gallery folder's ``uploads/``
        and index it: ``dict(added, row, images)``."""
        self._check_growable()
        path = self._save_upload(name, data)
        return self._call(lambda: self._add_folder(
            osp.dirname(path), only=osp.relpath(path, self.index.root)))

    # --- checks, run in the caller's thread

    def check_query(self, query: str) -> str:
        query = (query or '').strip()
        if not query:
            raise ServiceError('type a description of a person to search')
        if len(query) > self.limits.max_query_chars:
            raise ServiceError(
                f'the query has {len(query)} characters; the limit is '
                f'{self.limits.max_query_chars}')
        if tokenises_to_nothing(query):
            raise ServiceError('the query has no words the model reads')
        return query

    def check_row(self, row: int) -> None:
        if not 0 <= row < len(self.index):
            raise ServiceError(f'there is no image {row} in this gallery '
                               f'of {len(self.index)}', 404)

    def _check_growable(self) -> None:
        if self.index.root is None or self.index.pids is not None:
            raise ServiceError('only a gallery of an image folder can take '
                               'more images', 403)

    def image(self, row: int) -> Tuple[bytes, str]:
        """The bytes of image ``row`` and their media type. A file is
        served only from inside the gallery folder: one that has become a
        link out of it is refused."""
        self.check_row(row)
        if self.index.root is None:
            return self._read_image(row)
        path = self.index.image_path(row)
        root = osp.realpath(self.index.root)
        real = osp.realpath(path)
        if not real.startswith(root + os.sep):
            raise ServiceError(f'image {row} is a link out of the gallery '
                               'folder and is not served', 403)
        try:
            with open(real, 'rb') as f:
                data = f.read()
        except OSError as err:
            raise ServiceError(f'image {row} cannot be read '
                               f'({err.strerror})', 404) from err
        return data, MEDIA_TYPES.get(osp.splitext(real)[1].lower(),
                                     'application/octet-stream')

    def _save_upload(self, name: str, data: bytes) -> str:
        """Check an uploaded image and write it (named by its content) into
        ``uploads/``; returns its path."""
        extension = osp.splitext(name or '')[1].lower()
        if extension not in IMAGE_EXTENSIONS:
            raise ServiceError(f'{name!r} is not an image file '
                               f'({", ".join(IMAGE_EXTENSIONS)})')
        try:
            check_decoded_size(data, self.limits.max_pixels, repr(name))
        except ImageLoadError as err:
            raise ServiceError(str(err), 413) from err
        if cv2.imdecode(np.frombuffer(data, np.uint8),
                        cv2.IMREAD_COLOR) is None:
            raise ServiceError(f'{name!r} cannot be decoded as an image')
        digest = hashlib.sha256(data).hexdigest()[:16]
        path = osp.join(self.index.root, UPLOAD_FOLDER, digest + extension)
        os.makedirs(osp.dirname(path), exist_ok=True)
        write_bytes(path, data)
        return path

    # --- the worker thread

    def _queue(self, request) -> Future:
        try:
            self._requests.put_nowait(request)
        except queue.Full:
            raise ServiceError('the server is busy; try again in a moment',
                               503) from None
        return request.future

    def _call(self, work: Callable) -> Future:
        """Run ``work()`` on the worker thread."""
        future: Future = Future()
        return self._queue(_Call(work, future))

    def _serve(self) -> None:
        while True:
            request = self._requests.get()
            if isinstance(request, _Search):
                batch = [request]
                while len(batch) < self.limits.max_batch:
                    try:
                        waiting = self._requests.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(waiting, _Search):
                        batch.append(waiting)
                    else:
                        self._run(waiting.future, waiting.work)
                self._run_searches(batch)
            else:
                self._run(request.future, request.work)

    @staticmethod
    def _run(future: Future, work: Callable) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except Exception as err:  # answered to the request, not raised here
            future.set_exception(err)

    def _run_searches(self, batch: List[_Search]) -> None:
        """Encode and search the batch's queries together."""
        batch = [s for s in batch if s.future.set_running_or_notify_cancel()]
        if not batch:
            return
        try:
            queries = self.inferencer.encode_texts([s.query for s in batch])
            topk = max(s.topk for s in batch)
            scores, rows = self.index.topk(queries, topk)
        except Exception as err:  # every request of the batch is answered
            for search in batch:
                search.future.set_exception(err)
            return
        for position, search in enumerate(batch):
            search.future.set_result([
                self._hit(rank, int(row), float(score)) for rank, (
                    score, row) in enumerate(zip(
                        scores[position, :search.topk].tolist(),
                        rows[position, :search.topk].tolist())) if row >= 0])

    def _hit(self, rank: int, row: int, score: float) -> dict:
        pids = self.index.pids
        return dict(rank=rank + 1, row=row, score=score,
                    name=self.index.paths[row],
                    pid=None if pids is None else int(pids[row]),
                    captions=self.captions[row] if self.captions else [])

    def _words(self, row: int, query: str) -> List[dict]:
        data, _ = self.image(row)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        rows = word_view(self.inferencer, image, query, self.scorer)
        return [dict(text=r['text'], score=r['score'], p_noise=r['p_noise'],
                     p_info=r['p_info']) for r in rows]

    def _add_folder(self, folder: str, only: Optional[str] = None) -> dict:
        try:
            added, skipped = self.inferencer.extend_index(
                self.index, folder, progress=False)
        except (ValueError, FileNotFoundError) as err:
            raise ServiceError(str(err)) from err
        if skipped:
            logger.warning('%s: %d entries skipped: %s', folder, len(skipped),
                           skipped[:10])
        if added and self._save_to:
            self.index.save(self._save_to)
        result = dict(added=len(added), skipped=len(skipped),
                      images=len(self.index))
        if only is not None:
            result['row'] = self.index.paths.index(only)
        return result


@dataclass
class _Call:
    work: Callable
    future: Future
