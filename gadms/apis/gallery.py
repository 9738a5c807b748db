"""A gallery to search: the images of a folder (with #20's rules for links)
and :class:`GalleryIndex`, their normalised features saved with what they
index."""
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from gadms.common.atomic import atomic_torch_save
from gadms.common.formats import (GALLERY_INDEX_KEYS,
                                  GALLERY_INDEX_OPTIONAL_KEYS,
                                  IMAGE_EXTENSIONS)
from gadms.engine.checkpoint_loading import read_checkpoint
from .approximate import (IVFPQ, IVFPQSettings, build_ivfpq, deserialize,
                          ivfpq_topk, serialize)
from .search import chunked_topk, faiss_topk

# (path, reason) of a gallery entry left out of an index
Skip = Tuple[str, str]
# the most skipped entries quoted in a log line or an error
MAX_QUOTED_SKIPS = 10
# what an index may record as its kind
INDEX_KINDS = ('exact', IVFPQ)


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root + os.sep)


def _link_problem(path: str, real: str, root: str,
                  allow_outside_links: bool) -> Optional[str]:
    """Why a walked entry must be skipped as a link, or None."""
    if not osp.exists(path):
        return 'a broken link'
    if not allow_outside_links and not _inside(real, root):
        return (f'a link to {real}, outside the gallery folder (allow it '
                'with allow_outside_links / --allow-outside-links)')
    return None


def list_images(folder: str, allow_outside_links: bool = False
                ) -> Tuple[List[str], List[Skip]]:
    """Image files under ``folder`` (recursive, sorted) and the entries
    left out, with the reason.

    Symbolic links are followed, but a folder is walked once (a link back
    into a folder already walked, such as ``latest -> .``, is skipped) and a
    file is listed once (two paths of one file: the second is skipped);
    links that lead out of ``folder`` are skipped unless
    ``allow_outside_links``.

    Raises:
        FileNotFoundError: ``folder`` holds no image.
    """
    root = osp.realpath(folder)
    walked: Dict[str, str] = {root: folder}
    listed: Dict[str, str] = {}
    images: List[str] = []
    skipped: List[Skip] = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(folders):
            path = osp.join(parent, name)
            real = osp.realpath(path)
            problem = _link_problem(path, real, root, allow_outside_links)
            if problem is None and real in walked:
                problem = ('a link to a folder already indexed '
                           f'({walked[real]})')
            if problem:
                skipped.append((path, problem))
                continue
            walked[real] = path
            kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = osp.join(parent, name)
            real = osp.realpath(path)
            problem = _link_problem(path, real, root, allow_outside_links)
            if problem is None and real in listed:
                problem = f'the same file as {listed[real]}'
            if problem is None and not osp.isfile(real):
                problem = 'not a regular file'
            if problem:
                skipped.append((path, problem))
                continue
            listed[real] = path
            images.append(path)
    if not images:
        raise FileNotFoundError(
            f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {folder}'
            + (f' ({len(skipped)} entries skipped)' if skipped else ''))
    return sorted(images), skipped


def describe_skips(skipped: List[Skip]) -> str:
    """``N entries: path (reason); ...`` with the first few quoted."""
    quoted = '; '.join(f'{path} ({reason})'
                       for path, reason in skipped[:MAX_QUOTED_SKIPS])
    more = len(skipped) - MAX_QUOTED_SKIPS
    return f'{len(skipped)} entries: {quoted}' + (
        f'; and {more} more' if more > 0 else '')


@dataclass
class GalleryIndex:
    """Normalised gallery features with what they index.

    An index of an image folder stores the folder (absolute) and each
    image's path relative to it, so it can be used from any working
    directory and, when the folder moves, pointed at its new place
    (``gallery_root``); other galleries store absolute paths (or a
    dataset's own names for images it draws itself).

    Attributes:
        features (Tensor): ``[G, D]`` fp16 or fp32, L2-normalised.
        paths (list[str]): Image of each row (relative to ``root`` when
            it is set).
        pids (Tensor, optional): ``[G]`` identities, when known.
        fingerprint (str): The model that encoded them.
        root (str, optional): The gallery folder the paths are relative to.
        skipped (list[tuple[str, str]]): Entries of the gallery folder left
            out when the index was built, with the reason (not saved).
        kind (str): ``'exact'`` (every row scored) or ``'ivfpq'``
            (:mod:`gadms.apis.approximate`: candidates re-ranked).
        ann (faiss index, optional): The approximate index of an
            ``'ivfpq'`` index.
        ann_settings (IVFPQSettings, optional): How it was built and is
            searched.
    """

    features: torch.Tensor
    paths: List[str]
    pids: Optional[torch.Tensor]
    fingerprint: str
    root: Optional[str] = None
    skipped: List[Skip] = field(default_factory=list)
    kind: str = 'exact'
    ann: Optional[object] = None
    ann_settings: Optional[IVFPQSettings] = None

    def image_path(self, row: int) -> str:
        """The file of gallery image ``row``."""
        if self.root is None:
            return self.paths[row]
        return osp.join(self.root, self.paths[row])

    def approximate(self, settings: IVFPQSettings = IVFPQSettings(),
                    progress: bool = True) -> None:
        """Make this an approximate (``'ivfpq'``) index: searches then
        re-rank the candidates of an IVF-PQ index."""
        self.ann = build_ivfpq(self.features, settings, progress)
        self.kind, self.ann_settings = IVFPQ, settings

    def topk(self, queries: torch.Tensor, k: int,
             backend: Optional[str] = None,
             chunk_size: Optional[int] = None
             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[Q, k]`` and rows ``[Q, k]`` of the best images for
        normalised ``queries [Q, D]``: by the index's kind, or exactly
        with ``backend`` ``'torch'`` (:func:`chunked_topk`) or ``'faiss'``
        (:func:`faiss_topk`)."""
        k = min(k, len(self.features))
        if backend is None and self.kind == IVFPQ:
            return ivfpq_topk(queries, self.ann, self.features, k,
                              self.ann_settings)
        if backend in (None, 'torch'):
            return chunked_topk(queries, self.features, k, chunk_size)
        if backend == 'faiss':
            return faiss_topk(queries, self.features, k)
        raise ValueError(f"backend must be 'torch' or 'faiss', got "
                         f'{backend!r}')

    def save(self, path: str) -> None:
        """Write the index (a weights-only loadable torch file), atomically:
        a failed write leaves an existing index at ``path`` untouched."""
        content = dict(features=self.features, paths=self.paths,
                       pids=self.pids, fingerprint=self.fingerprint,
                       root=self.root, kind=self.kind)
        if self.ann is not None:
            content.update(ann=serialize(self.ann),
                           ann_settings=asdict(self.ann_settings))
        atomic_torch_save(content, path)

    @classmethod
    def load(cls, path: str,
             fingerprint: Optional[str] = None,
             gallery_root: Optional[str] = None) -> 'GalleryIndex':
        """Read an index; with ``fingerprint``, refuse one made by another
        model; with ``gallery_root``, its folder has moved there.

        Raises:
            ValueError: not an index, another model's, or its gallery
                folder is gone (the message says how to point at it).
        """
        content = read_checkpoint(path)
        if not GALLERY_INDEX_KEYS <= set(content) <= (
                GALLERY_INDEX_KEYS | GALLERY_INDEX_OPTIONAL_KEYS):
            raise ValueError(
                f'{path} is not a gallery index (keys: {sorted(content)}); '
                'build one with --save-index')
        if content.get('kind', 'exact') not in INDEX_KINDS or (
                content.get('kind') == IVFPQ) != ('ann' in content):
            raise ValueError(f'{path}: kind {content.get("kind")!r} with'
                             f'{"" if "ann" in content else "out"} an '
                             f'approximate index; expected one of '
                             f'{INDEX_KINDS}, the approximate one with it')
        if 'ann' in content:
            content['ann'] = deserialize(content['ann'])
            content['ann_settings'] = IVFPQSettings(**content[
                'ann_settings'])
        index = cls(**content)
        if fingerprint is not None and index.fingerprint != fingerprint:
            raise ValueError(
                f'{path} was built by another model (fingerprint '
                f'{index.fingerprint[:12]}, this model {fingerprint[:12]}); '
                'rebuild the index with this config and checkpoint')
        if gallery_root is not None:
            index.root = osp.abspath(gallery_root)
        if index.root is not None and not osp.isdir(index.root):
            raise ValueError(
                f'{path}: its gallery folder {index.root} does not exist '
                '(moved?); pass the new folder as gallery_root '
                '(tools/retrieve.py --gallery-root)')
        return index

    def __len__(self) -> int:
        return len(self.paths)

    def extend(self, features: torch.Tensor, paths: List[str]) -> None:
        """Append rows (``features [N, D]``, normalised; ``paths`` as this
        index stores them) to an index without pids.

        Raises:
            ValueError: the index has pids, or a path is already indexed.
        """
        if self.pids is not None:
            raise ValueError('an index of a dataset split (with pids) '
                             'cannot take images without identities')
        repeated = sorted(set(paths) & set(self.paths))
        if repeated:
            raise ValueError(f'already indexed: {repeated[:MAX_QUOTED_SKIPS]}')
        self.features = torch.cat([self.features,
                                   features.to(self.features.dtype)])
        self.paths = self.paths + list(paths)
        if self.ann is not None:  # faiss numbers the new rows after the old
            self.ann.add(features.float().contiguous().numpy())
