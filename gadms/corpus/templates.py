"""Caption templates: benchmark captions with their attribute words
replaced by placeholders, clustered to keep a diverse subset (method.md
7.1: the in-context guides of the MLLM captioner)."""
import json
import re
import zlib
from typing import Callable, Dict, List, Sequence

import numpy as np

# placeholder -> words it replaces (lower case, whole words)
DEFAULT_ATTRIBUTES: Dict[str, Sequence[str]] = {
    'person': ('man', 'woman', 'boy', 'girl', 'lady', 'gentleman', 'person',
               'guy', 'male', 'female', 'pedestrian'),
    'colour': ('black', 'white', 'red', 'blue', 'green', 'yellow', 'grey',
               'gray', 'brown', 'pink', 'purple', 'orange', 'beige', 'navy',
               'dark', 'light'),
    'upper': ('shirt', 't-shirt', 'tshirt', 'jacket', 'coat', 'sweater',
              'hoodie', 'top', 'blouse', 'vest', 'dress', 'jumper'),
    'lower': ('pants', 'trousers', 'jeans', 'shorts', 'skirt', 'leggings'),
    'shoes': ('shoes', 'sneakers', 'boots', 'sandals', 'heels'),
    'bag': ('backpack', 'bag', 'handbag', 'purse', 'satchel'),
    'hair': ('hair', 'ponytail'),
}


def make_template(caption: str,
                  attributes: Dict[str, Sequence[str]] = DEFAULT_ATTRIBUTES
                  ) -> str:
    """Replace attribute words by ``[placeholder]``; words in no list stay.
    """
    lookup = {word: name for name, words in attributes.items()
              for word in words}

    def replace(match: re.Match) -> str:
        word = match.group(0)
        name = lookup.get(word.lower())
        return f'[{name}]' if name else word

    return re.sub(r"[A-Za-z][A-Za-z'-]*", replace, caption.strip())


def embed(texts: Sequence[str], dim: int = 512) -> np.ndarray:
    """L2-normalised hashed bag of words and word bigrams ``[N, dim]``
    (a sentence embedding without model weights)."""
    vectors = np.zeros((len(texts), dim), np.float32)
    for row, text in enumerate(texts):
        words = re.findall(r"[\w\[\]'-]+", text.lower())
        for gram in words + [' '.join(p) for p in zip(words, words[1:])]:
            vectors[row, zlib.crc32(gram.encode()) % dim] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def kmeans(vectors: np.ndarray, k: int, seed: int = 0,
           iterations: int = 30) -> np.ndarray:
    """Cluster index of each row (k-means++ start, cosine on unit rows)."""
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, k):
        distance = np.min(
            [1 - vectors @ c for c in centres], axis=0).clip(min=0)
        probabilities = distance / distance.sum() if distance.sum() else None
        centres.append(vectors[rng.choice(len(vectors), p=probabilities)])
    centres = np.stack(centres)
    for _ in range(iterations):
        labels = (vectors @ centres.T).argmax(axis=1)
        for c in range(k):
            members = vectors[labels == c]
            if len(members):
                centre = members.mean(axis=0)
                centres[c] = centre / max(np.linalg.norm(centre), 1e-12)
    return (vectors @ centres.T).argmax(axis=1)


def select_diverse(templates: Sequence[str],
                   num_clusters: int,
                   per_cluster: int = 5,
                   seed: int = 0,
                   embedder: Callable[[Sequence[str]], np.ndarray] = embed
                   ) -> List[str]:
    """Unique templates clustered into ``num_clusters``; from each, the
    one nearest the centre plus up to ``per_cluster`` random others (the
    WebPerson recipe keeps the centroid-nearest and 5 random).

    ``embedder`` maps texts to L2-normalised rows ``[N, D]``: the hashed
    bag of words by default, or a text encoder (the paper used
    OpenCLIP ViT-bigG/14), e.g. ``TextPersonInferencer.encode_texts``.
    """
    unique = sorted(set(templates))
    if len(unique) <= num_clusters:
        return unique
    vectors = np.asarray(embedder(unique), dtype=np.float32)
    labels = kmeans(vectors, num_clusters, seed)
    rng = np.random.default_rng(seed)
    kept = []
    for cluster in range(num_clusters):
        members = np.flatnonzero(labels == cluster)
        if not len(members):
            continue
        centre = vectors[members].mean(axis=0)
        nearest = members[np.argmax(vectors[members] @ centre)]
        others = rng.permutation(members[members != nearest])[:per_cluster]
        kept += [unique[i] for i in [nearest, *others]]
    return sorted(kept)


def build_template_bank(captions: Sequence[str],
                        num_clusters: int,
                        per_cluster: int = 5,
                        seed: int = 0,
                        attributes: Dict[str, Sequence[str]] = (
                            DEFAULT_ATTRIBUTES),
                        embedder: Callable[[Sequence[str]],
                                           np.ndarray] = embed) -> List[str]:
    """Templates from benchmark captions: placeholders, dedup, diversity
    selection. Captions without any attribute word are left out."""
    templates = [make_template(c, attributes) for c in captions]
    templates = [t for t in templates if '[' in t]
    return select_diverse(templates, num_clusters, per_cluster, seed,
                          embedder)


def load_template_bank(path: str) -> List[str]:
    """A JSON list of template strings."""
    with open(path, encoding='utf-8') as f:
        templates = json.load(f)
    if not isinstance(templates, list) or not templates or not all(
            isinstance(t, str) and t.strip() for t in templates):
        raise ValueError(f'{path}: expected a non-empty JSON list of '
                         'template strings')
    return templates
