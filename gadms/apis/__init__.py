from .inference import GalleryIndex, TextPersonInferencer, list_images
from .search import chunked_topk, faiss_topk

__all__ = [
    'TextPersonInferencer', 'GalleryIndex', 'list_images', 'chunked_topk',
    'faiss_topk'
]
