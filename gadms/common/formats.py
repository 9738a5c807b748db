"""The layouts of the files gadms reads and writes, one definition each.

Every reader and writer of a format takes its names from here: WebPerson's
parquet columns (the corpus export writes them, ``ParquetCorpus`` and the
SynthPerson export read and write them), its JSON entries, the keys of a
saved gallery index, and the image files a gallery folder holds.
"""
from typing import Dict, Tuple

import pyarrow as pa

# WebPerson: two captions of each person crop
CAPTION_FIELDS: Tuple[str, ...] = ('caption1', 'caption2')
# the parquet form (the Hugging Face release): the image as a {bytes, path}
# struct (or plain binary), the image's path, the captions
WEBPERSON_COLUMNS: Tuple[str, ...] = ('image', 'image_path') + CAPTION_FIELDS
WEBPERSON_SCHEMA = pa.schema([
    ('image', pa.struct([('bytes', pa.binary()), ('path', pa.string())])),
    ('image_path', pa.string()),
    *((field, pa.string()) for field in CAPTION_FIELDS),
])
# optional per-caption annotation columns for AnnotatedTokenScorer
# (gadms/datasets/transforms/token_annotation.py): list<list<int64>> of
# [start, end] noise spans, or list<struct<word, confidence>>
ANNOTATION_KINDS: Tuple[str, ...] = ('noise_spans', 'word_confidences')
ANNOTATION_COLUMNS: Dict[str, Tuple[str, str]] = {
    f'{field}_{kind}': (field, kind)
    for field in CAPTION_FIELDS
    for kind in ANNOTATION_KINDS
}
# the JSON form (the released code's annotation file)
WEBPERSON_JSON_NAME = 'annotations.json'


def webperson_json_entry(image_path: str, captions: Tuple[str, str]) -> dict:
    """One entry of WebPerson's JSON form: ``{path: {caption1, caption2}}``
    (the path under the ``images/`` folder)."""
    return {image_path: dict(zip(CAPTION_FIELDS, captions))}


def webperson_parquet_row(png: bytes, image_path: str,
                          captions: Tuple[str, str]) -> dict:
    """One row of WebPerson's parquet form, as :data:`WEBPERSON_SCHEMA`."""
    return dict(image=dict(bytes=png, path=image_path),
                image_path=image_path, **dict(zip(CAPTION_FIELDS, captions)))


# a gallery index saved by GalleryIndex.save: these keys, plus 'root'
# (the gallery folder), 'kind' ('exact' or 'ivfpq') and, for an
# approximate index, 'ann' (the faiss index) and 'ann_settings'
GALLERY_INDEX_KEYS = frozenset({'features', 'paths', 'pids', 'fingerprint'})
GALLERY_INDEX_OPTIONAL_KEYS = frozenset({'root', 'kind', 'ann',
                                         'ann_settings'})

# the files a gallery folder or a crawl's listing counts as images
IMAGE_EXTENSIONS: Tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.bmp',
                                     '.webp')
