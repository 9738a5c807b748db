"""Use a trained retriever: encode, index a gallery, search by text."""
import hashlib
import json
import logging
import os
import os.path as osp
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from gadms.common.progress import Progress
from gadms.datasets.transforms import (ImageLoadError, LoadPersonImage,
                                       get_tokenizer, tokenises_to_nothing)
from gadms.engine.checkpoint_loading import load_model_weights
from gadms.registry import DATASETS, MODELS, TRANSFORMS
from .gallery import (MAX_QUOTED_SKIPS, GalleryIndex, describe_skips,
                      list_images)
from .search import chunked_topk

ImageInput = Union[str, np.ndarray]
# test-pipeline steps that are not about the image's pixels
NON_IMAGE_STEPS = ('LoadPersonImage', 'TokenizeCaption',
                   'PackTextPersonInputs')


def test_image_steps(cfg: Config, image_size: Sequence[int]) -> List[dict]:
    """The image steps of the config's test pipeline (without loading,
    tokenising and packing), so the inferencer sees images exactly as
    ``tools/test.py`` does; a config without a test pipeline resizes to
    ``image_size`` ``(H, W)``."""
    loader = cfg.get('test_dataloader')
    if loader:
        dataset = loader['dataset']
        pipeline = dataset.get('datasets', [dataset])[0]['pipeline']
    else:
        pipeline = [dict(type='Resize', scale=tuple(image_size)[::-1],
                         keep_ratio=False)]
    return [step for step in pipeline if step['type'] not in NON_IMAGE_STEPS]


def test_image_transform(cfg: Config,
                         image_size: Sequence[int]) -> Callable[[dict], dict]:
    """:func:`test_image_steps` built into one transform."""
    init_default_scope('gadms')
    return Compose([TRANSFORMS.build(step)
                    for step in test_image_steps(cfg, image_size)])


def model_config_text(model_cfg: dict) -> str:
    """The model config as the fingerprint reads it: JSON with sorted keys
    (a tuple reads as a list, so a config that went through JSON, such as
    a pretrained folder's, reads the same), without the backbone's
    ``pretrained`` weights (the fingerprint hashes every weight itself)."""
    model = dict(model_cfg)
    model['backbone'] = {key: value for key, value in
                         model['backbone'].items() if key != 'pretrained'}
    return json.dumps(model, sort_keys=True, default=repr)


def _batches(items: Sequence, size: int, progress: bool) -> Iterable:
    """``(start, items[start:start + size])`` pairs."""
    bar = Progress(len(items), 'encoding images') if progress else None
    for start in range(0, len(items), size):
        batch = items[start:start + size]
        yield start, batch
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()


class TextPersonInferencer:
    """A retriever built from a config and a checkpoint, ready to search.

    Args:
        config (str | Config): Model config (its ``model`` is built).
        checkpoint (str, optional): Weights; without, the config's own
            initialisation (e.g. its CLIP weights) is used.
        device (str): ``'cpu'`` or ``'cuda'``...
        partial_load (bool): Load the checkpoint keys that fit the model
            and log the others; by default a checkpoint that does not fit
            (or is not a model checkpoint) raises ``CheckpointError``.

    Example::

        >>> inferencer = TextPersonInferencer(
        ...     'configs/gadms/gadms_tiny_1xb64_synthperson-noise40_demo.py',
        ...     'work_dirs/demo/epoch_12.pth')
        >>> index = inferencer.build_index('my_gallery/')
        >>> hits = inferencer.search('a man in a red jacket', index, topk=5)
        >>> hits[0][0]['path'], hits[0][0]['score']
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 partial_load: bool = False) -> None:
        init_default_scope('gadms')
        self.cfg = Config.fromfile(config) if isinstance(config,
                                                         str) else config
        model_cfg = self.cfg.model.copy()
        if checkpoint is not None:
            model_cfg.backbone.pretrained = None
        self.model = MODELS.build(model_cfg)
        if checkpoint is not None:
            load_model_weights(self.model, checkpoint, partial_load)
        else:
            self.model.init_weights()
        self.model.eval().to(device)
        self.device = torch.device(device)
        self.image_size = self.model.backbone.image_size
        self.image_transform = test_image_transform(self.cfg,
                                                    self.image_size)
        self.tokenizer = get_tokenizer(self.model.backbone.context_length)
        self.fingerprint = self._fingerprint()

    @classmethod
    def from_pretrained(cls, folder: str,
                        device: str = 'cpu') -> 'TextPersonInferencer':
        """A retriever from a pretrained folder (``model.safetensors``,
        ``config.json``; written by
        ``tools/model_converters/export_pretrained.py``). Nothing in the
        folder is run as code (:mod:`gadms.apis.pretrained`).

        Raises:
            FileNotFoundError: a file of the folder is missing.
            PretrainedFolderError: its config is not one gadms wrote, names
                an unregistered module, or it and the weights no longer
                match the fingerprint recorded at export.
            CheckpointError: the weights do not fit the config (the keys
                are named).
        """
        from .pretrained import (WEIGHTS_FILE, PretrainedFolderError,
                                 read_pretrained_config)
        cfg, recorded = read_pretrained_config(folder)
        inferencer = cls(cfg, osp.join(folder, WEIGHTS_FILE), device)
        if inferencer.fingerprint != recorded:
            raise PretrainedFolderError(
                f'{folder}: its weights and config have fingerprint '
                f'{inferencer.fingerprint[:12]}, not the {recorded[:12]} '
                'recorded at export: they were changed since; export the '
                'checkpoint again')
        return inferencer

    def _fingerprint(self) -> str:
        """Hash of the model config and every weight."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(model_config_text(self.cfg.model.to_dict()).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(
                torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @staticmethod
    def read_image(image: ImageInput) -> np.ndarray:
        """A path or an array -> BGR uint8 ``[H, W, 3]``."""
        if isinstance(image, np.ndarray):
            return image
        return LoadPersonImage()(dict(img_path=image))['img']

    def _read_batch(self, batch: Sequence[ImageInput], first: int,
                    unreadable: Optional[List[Tuple[int, str]]]
                    ) -> List[np.ndarray]:
        """The batch's images after the test pipeline's image steps; with
        ``unreadable`` (a list), images that cannot be read are appended
        to it as ``(position, reason)`` instead of raising."""
        pixels = []
        for position, image in enumerate(batch, first):
            try:
                array = self.read_image(image)
            except ImageLoadError as err:
                if unreadable is None:
                    raise
                unreadable.append((position, str(err)))
                continue
            pixels.append(np.ascontiguousarray(
                self.image_transform(dict(img=array))['img']))
        return pixels

    @torch.no_grad()
    def encode_images(self,
                      images: Sequence[ImageInput],
                      batch_size: int = 64,
                      progress: bool = False,
                      unreadable: Optional[List[Tuple[int, str]]] = None
                      ) -> torch.Tensor:
        """Images (paths or BGR uint8 arrays ``[H, W, 3]``) -> normalised
        global features ``[N, D]`` (fp32, CPU): the image steps of the
        config's test pipeline, the model's data preprocessor and
        ``extract_image_feat``, as ``tools/test.py`` computes them.

        By default an image that cannot be read raises
        :class:`ImageLoadError`; with ``unreadable`` (a list) it is
        appended there as ``(position in images, reason)`` and left out of
        the features (``[N - len(unreadable), D]``).
        """
        features = []
        for first, batch in _batches(list(images), batch_size, progress):
            arrays = self._read_batch(batch, first, unreadable)
            if not arrays:
                continue
            pixels = torch.stack([
                torch.from_numpy(array).permute(2, 0, 1) for array in arrays
            ]).to(self.device)
            normalised = self.model.data_preprocessor.normalise_images(pixels)
            feats = self.model.extract_image_feat(normalised)
            features.append(F.normalize(feats.float(), dim=-1).cpu())
        if not features:
            return torch.empty(0, self.model.backbone.embed_dim)
        return torch.cat(features)

    @torch.no_grad()
    def encode_texts(self,
                     captions: Sequence[str],
                     batch_size: int = 256) -> torch.Tensor:
        """Captions -> normalised sentence features ``[T, D]`` (fp32).

        Raises:
            ValueError: a caption tokenises to nothing (empty, blank,
                ``&nbsp;``...): it would match the gallery on SOT + EOT.
        """
        empty = [i for i, c in enumerate(captions) if tokenises_to_nothing(c)]
        if empty:
            raise ValueError(
                f'the captions at positions {empty[:MAX_QUOTED_SKIPS]} '
                f'tokenise to nothing (e.g. {captions[empty[0]]!r}): a query '
                'needs at least one word')
        features = []
        for _, batch in _batches(list(captions), batch_size, False):
            text_ids = torch.from_numpy(self.tokenizer(batch)).to(
                self.device)
            feats = self.model.extract_text_feat(text_ids)
            features.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(features)

    def build_index(self,
                    gallery: Union[str, Sequence[str], dict, BaseDataset],
                    batch_size: int = 64,
                    dtype: torch.dtype = torch.float16,
                    progress: bool = True,
                    strict: bool = False,
                    allow_outside_links: bool = False) -> GalleryIndex:
        """Encode a gallery: a folder of images, a list of image paths, or
        a dataset (or its config; e.g. a benchmark's test split, whose pids
        are kept for scoring results).

        A folder is walked by :func:`list_images`; its entries that are not
        images to index (links looping back, leaving the folder, or
        repeating a file; files that cannot be read as images) are left out,
        counted in a warning and listed in the index's ``skipped``, unless
        ``strict``. Images given as a list or a dataset must all load.

        Raises:
            ValueError: ``strict`` and a folder entry had to be skipped.
        """
        if isinstance(gallery, str):
            return self._index_folder(gallery, batch_size, dtype, progress,
                                      strict, allow_outside_links)
        pids, root = None, None
        if isinstance(gallery, (dict, BaseDataset)):
            dataset = gallery if isinstance(
                gallery, BaseDataset) else DATASETS.build(
                    dict(gallery, pipeline=[]))
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            images = [info.get('img', info['img_path']) for info in infos]
            # files as absolute paths; a drawn dataset's names as they are
            paths = [info['img_path'] if 'img' in info else osp.abspath(
                info['img_path']) for info in infos]
            pids = torch.tensor([info['pid'] for info in infos])
        else:
            images = list(gallery)
            paths = [osp.abspath(p) for p in images]
        features = self.encode_images(images, batch_size, progress)
        return GalleryIndex(features.to(dtype), paths, pids, self.fingerprint,
                            root)

    def _index_folder(self, folder: str, batch_size: int,
                      dtype: torch.dtype, progress: bool, strict: bool,
                      allow_outside_links: bool) -> GalleryIndex:
        """:meth:`build_index` of an image folder."""
        images, skipped = list_images(folder, allow_outside_links)
        if strict and skipped:
            raise ValueError(f'{folder}: {describe_skips(skipped)} (strict)')
        unreadable: Optional[List[Tuple[int, str]]] = None if strict else []
        features = self.encode_images(images, batch_size, progress,
                                      unreadable)
        if unreadable:
            left_out = {position for position, _ in unreadable}
            skipped += [(images[position], reason)
                        for position, reason in unreadable]
            images = [p for i, p in enumerate(images) if i not in left_out]
        if not images:
            raise FileNotFoundError(f'{folder}: no readable image; '
                                    f'{describe_skips(skipped)}')
        if skipped:
            print_log(f'{folder}: indexed {len(images)} images, skipped '
                      f'{describe_skips(skipped)}', logger='current',
                      level=logging.WARNING)
        return GalleryIndex(features.to(dtype),
                            [osp.relpath(p, folder) for p in images], None,
                            self.fingerprint, osp.abspath(folder), skipped)

    def extend_index(self, index: GalleryIndex, folder: str,
                     batch_size: int = 64, progress: bool = True,
                     allow_outside_links: bool = False
                     ) -> Tuple[List[str], List[Tuple[str, str]]]:
        """Add the images of ``folder`` (inside the index's gallery folder)
        that the index does not hold yet; the images already indexed are
        not encoded again.

        Returns:
            tuple: the paths added (relative to the gallery folder) and the
            entries skipped, with the reason.

        Raises:
            ValueError: the index has no gallery folder, or ``folder`` is
                not inside it.
            FileNotFoundError: ``folder`` holds no image.
        """
        if index.root is None:
            raise ValueError('only an index of an image folder can take more '
                             'images (this one has no gallery folder)')
        root = osp.realpath(index.root)
        real = osp.realpath(osp.join(index.root, folder))
        if real != root and not real.startswith(root + os.sep):
            raise ValueError(f'{folder} is outside the gallery folder '
                             f'{index.root}')
        images, skipped = list_images(real, allow_outside_links)
        known = set(index.paths)
        new = [path for path in images
               if osp.relpath(path, root) not in known]
        unreadable: List[Tuple[int, str]] = []
        features = self.encode_images(new, batch_size, progress, unreadable)
        left_out = {position for position, _ in unreadable}
        skipped += [(new[position], reason) for position, reason in
                    unreadable]
        added = [osp.relpath(path, root) for position, path in
                 enumerate(new) if position not in left_out]
        if added:
            index.extend(features, added)
        return added, skipped

    def load_index(self, path: str,
                   gallery_root: Optional[str] = None) -> GalleryIndex:
        """Load an index built by this model (refuses others); with
        ``gallery_root``, its image folder has moved there."""
        return GalleryIndex.load(path, self.fingerprint, gallery_root)

    def search(self,
               captions: Union[str, Sequence[str]],
               index: GalleryIndex,
               topk: int = 10,
               chunk_size: Optional[int] = None,
               backend: Optional[str] = None) -> List[List[dict]]:
        """Rank the gallery for each caption (text to image).

        By default the index's kind decides: an ``'ivfpq'`` index re-ranks
        the candidates of its approximate index
        (:mod:`gadms.apis.approximate`), an exact one is scanned whole.
        ``backend='torch'`` scans the index in chunks (bounded memory, fp16
        storage kept, ties by gallery order, ``chunk_size`` gallery rows
        per step, by default :func:`~gadms.apis.search.default_chunk_rows`);
        ``'faiss'`` uses faiss' exact flat index (copies the gallery to
        fp32; the two run at about the same speed on CPU,
        docs/benchmarks.md).

        Returns:
            list[list[dict]]: per caption, ``topk`` hits ``dict(rank, path,
            score, index, pid)`` (pid None when unknown), best first (an
            approximate index may find fewer).
        """
        if isinstance(captions, str):
            captions = [captions]
        scores, rows = index.topk(self.encode_texts(captions), topk,
                                  backend, chunk_size)
        return [[
            dict(rank=rank + 1, path=index.image_path(row),
                 score=float(score),
                 index=int(row),
                 pid=None if index.pids is None else int(index.pids[row]))
            for rank, (score, row) in enumerate(zip(row_scores, row_ids))
            if row >= 0  # an approximate search may find fewer than topk
        ] for row_scores, row_ids in zip(scores, rows)]

    def rank_captions(self, image: ImageInput,
                      captions: Sequence[str]) -> List[dict]:
        """Image to text: ``captions`` ranked for one image, best first
        (``dict(rank, caption, score)``)."""
        scores, order = chunked_topk(self.encode_images([image]),
                                     self.encode_texts(captions),
                                     len(captions))
        return [dict(rank=rank + 1, caption=captions[i], score=float(s))
                for rank, (s, i) in enumerate(zip(scores[0], order[0]))]
