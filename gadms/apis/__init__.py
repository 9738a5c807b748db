from .gallery import GalleryIndex, list_images
from .inference import TextPersonInferencer
from .search import chunked_topk, faiss_topk

__all__ = [
    'TextPersonInferencer', 'GalleryIndex', 'list_images', 'chunked_topk',
    'faiss_topk'
]
