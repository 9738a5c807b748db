"""Use a trained retriever: encode, index a gallery, search by text."""
import glob
import hashlib
import os.path as osp
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from gadms.datasets.transforms import LoadPersonImage, get_tokenizer
from gadms.engine.checkpoint_loading import (GALLERY_INDEX_KEYS,
                                             load_model_weights,
                                             read_checkpoint)
from gadms.registry import DATASETS, MODELS
from gadms.utils.atomic import atomic_torch_save
from .search import DEFAULT_CHUNK, chunked_topk, faiss_topk

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
ImageInput = Union[str, np.ndarray]


def list_images(folder: str) -> List[str]:
    """Image files under ``folder`` (recursive), sorted."""
    paths = sorted(
        p for p in glob.glob(osp.join(folder, '**', '*'), recursive=True)
        if p.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)})'
                                f' under {folder}')
    return paths


def _batches(items: Sequence, size: int, progress: bool) -> Iterable:
    bar = ProgressBar(len(items)) if progress else None
    for start in range(0, len(items), size):
        batch = items[start:start + size]
        yield batch
        if bar is not None:
            bar.completed += len(batch) - 1
            bar.update()
    if bar is not None:
        bar.file.write('\n')


@dataclass
class GalleryIndex:
    """Normalised gallery features with what they index.

    Attributes:
        features (Tensor): ``[G, D]`` fp16 or fp32, L2-normalised.
        paths (list[str]): Image of each row.
        pids (Tensor, optional): ``[G]`` identities, when known.
        fingerprint (str): The model that encoded them.
    """

    features: torch.Tensor
    paths: List[str]
    pids: Optional[torch.Tensor]
    fingerprint: str

    def save(self, path: str) -> None:
        """Write the index (a weights-only loadable torch file), atomically:
        a failed write leaves an existing index at ``path`` untouched."""
        atomic_torch_save(
            dict(features=self.features, paths=self.paths, pids=self.pids,
                 fingerprint=self.fingerprint), path)

    @classmethod
    def load(cls, path: str,
             fingerprint: Optional[str] = None) -> 'GalleryIndex':
        """Read an index; with ``fingerprint``, refuse one made by another
        model."""
        content = read_checkpoint(path)
        if set(content) != GALLERY_INDEX_KEYS:
            raise ValueError(
                f'{path} is not a gallery index (keys: {sorted(content)}); '
                'build one with --save-index')
        index = cls(**content)
        if fingerprint is not None and index.fingerprint != fingerprint:
            raise ValueError(
                f'{path} was built by another model (fingerprint '
                f'{index.fingerprint[:12]}, this model {fingerprint[:12]}); '
                'rebuild the index with this config and checkpoint')
        return index

    def __len__(self) -> int:
        return len(self.paths)


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
        ...     'configs/baselines/clip-sdm_tiny_synthperson.py',
        ...     'work_dirs/demo/epoch_20.pth')
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
        self.tokenizer = get_tokenizer(self.model.backbone.context_length)
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        """Hash of the model config and every weight."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr(self.cfg.model.to_dict()).encode())
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

    @torch.no_grad()
    def encode_images(self,
                      images: Sequence[ImageInput],
                      batch_size: int = 64,
                      progress: bool = False) -> torch.Tensor:
        """Images (paths or BGR uint8 arrays ``[H, W, 3]``) -> normalised
        global features ``[N, D]`` (fp32, CPU). Images are resized to the
        model's input size, as in the test pipeline."""
        height, width = self.image_size
        features = []
        for batch in _batches(list(images), batch_size, progress):
            pixels = np.stack([
                mmcv.imresize(self.read_image(image), (width, height))
                for image in batch
            ])
            tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(
                self.device)
            normalised = self.model.data_preprocessor.normalise_images(tensor)
            feats = self.model.backbone.encode_image(normalised)[:, 0]
            features.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(features)

    @torch.no_grad()
    def encode_texts(self,
                     captions: Sequence[str],
                     batch_size: int = 256) -> torch.Tensor:
        """Captions -> normalised sentence features ``[T, D]`` (fp32)."""
        features = []
        for batch in _batches(list(captions), batch_size, False):
            text_ids = torch.from_numpy(self.tokenizer(batch)).to(
                self.device)
            tokens = self.model.backbone.encode_text(text_ids)
            feats = self.model.backbone.pool_text(tokens, text_ids)
            features.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(features)

    def build_index(self,
                    gallery: Union[str, Sequence[str], dict, BaseDataset],
                    batch_size: int = 64,
                    dtype: torch.dtype = torch.float16,
                    progress: bool = True) -> GalleryIndex:
        """Encode a gallery: a folder of images, a list of image paths, or
        a dataset (or its config; e.g. a benchmark's test split, whose pids
        are kept for scoring results)."""
        pids = None
        if isinstance(gallery, (dict, BaseDataset)):
            dataset = gallery if isinstance(
                gallery, BaseDataset) else DATASETS.build(
                    dict(gallery, pipeline=[]))
            infos = [dataset.get_data_info(i) for i in range(len(dataset))]
            images = [info.get('img', info['img_path']) for info in infos]
            paths = [info['img_path'] for info in infos]
            pids = torch.tensor([info['pid'] for info in infos])
        else:
            paths = list_images(gallery) if isinstance(gallery,
                                                       str) else list(gallery)
            images = paths
        features = self.encode_images(images, batch_size, progress)
        return GalleryIndex(features.to(dtype), paths, pids, self.fingerprint)

    def load_index(self, path: str) -> GalleryIndex:
        """Load an index built by this model (refuses others)."""
        return GalleryIndex.load(path, self.fingerprint)

    def search(self,
               captions: Union[str, Sequence[str]],
               index: GalleryIndex,
               topk: int = 10,
               chunk_size: int = DEFAULT_CHUNK,
               backend: str = 'torch') -> List[List[dict]]:
        """Rank the gallery for each caption (text to image).

        ``backend='torch'`` scans the index in chunks (bounded memory, fp16
        storage kept, ties by gallery order); ``'faiss'`` uses faiss'
        exact flat index (faster on CPU, copies the gallery to fp32).

        Returns:
            list[list[dict]]: per caption, ``topk`` hits ``dict(rank, path,
            score, index, pid)`` (pid None when unknown), best first.
        """
        if isinstance(captions, str):
            captions = [captions]
        queries, k = self.encode_texts(captions), min(topk, len(index))
        if backend == 'faiss':
            scores, rows = faiss_topk(queries, index.features, k)
        elif backend == 'torch':
            scores, rows = chunked_topk(queries, index.features, k,
                                        chunk_size)
        else:
            raise ValueError(f"backend must be 'torch' or 'faiss', got "
                             f'{backend!r}')
        return [[
            dict(rank=rank + 1, path=index.paths[row], score=float(score),
                 index=int(row),
                 pid=None if index.pids is None else int(index.pids[row]))
            for rank, (score, row) in enumerate(zip(row_scores, row_ids))
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
