"""Per-token values from per-caption annotations: character spans marked
as noise, or per-word confidences, placed on CLIP's BPE tokens.

An annotation is a dict with one of

- ``noise_spans``: ``[[start, end], ...]`` (or ``[kind, start, end]``, as
  the miniature's simulated captioner records them): half-open character
  ranges of the caption that are noise. Their tokens get 0, the rest 1.
- ``word_confidences``: ``[[word, confidence], ...]`` in caption order
  (e.g. an MLLM's token probabilities summed into words, see
  ``docs/webperson_pipeline.md``): each word, a run of non-space
  characters, is found whole in the caption from where the previous one
  ended, and its tokens get its confidence in [0, 1]; words without one
  get 1.

A token covers its whole CLIP word, so a word touched by a noise span is
noise, and a word whose characters carry several confidences gets the
lowest.
"""
import re
import zlib
from typing import Optional

import numpy as np

from gadms.registry import TRANSFORMS
from .text import CaptionTokensTransform
from .tokenizer import CLIPTokenizer, get_tokenizer

ANNOTATION_KINDS = ('noise_spans', 'word_confidences')


def _span_bounds(span, length: int, where: str) -> tuple:
    bounds = span[-2:] if isinstance(span, (list, tuple)) else None
    if (not bounds or len(bounds) != 2
            or not all(isinstance(b, int) for b in bounds)
            or not 0 <= bounds[0] < bounds[1] <= length):
        raise ValueError(
            f'{where}: noise span {span!r} is not a [start, end] range '
            f'inside the caption ({length} characters)')
    return bounds


def _noise_characters(caption: str, spans: list, where: str) -> np.ndarray:
    values = np.ones(len(caption), dtype=np.float32)
    for span in spans:
        start, end = _span_bounds(span, len(caption), where)
        values[start:end] = 0.0
    return values


def _confident_characters(caption: str, words: list,
                          where: str) -> np.ndarray:
    values = np.ones(len(caption), dtype=np.float32)
    position = 0
    for entry in words:
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2
                or not isinstance(entry[0], str) or not entry[0]):
            raise ValueError(f'{where}: word confidence {entry!r} is not a '
                             '[word, confidence] pair')
        word, confidence = entry
        if not 0.0 <= float(confidence) <= 1.0:
            raise ValueError(f'{where}: confidence {confidence!r} of '
                             f'{word!r} is outside [0, 1]')
        found = re.compile(r'(?<!\S)' + re.escape(word) + r'(?!\S)').search(
            caption, position)
        if not found:
            raise ValueError(
                f'{where}: annotated word {word!r} is not in the caption '
                f'after character {position}: {caption!r}')
        start, position = found.span()
        values[start:position] = float(confidence)
    return values


def token_values(caption: str,
                 annotation: Optional[dict],
                 tokenizer: CLIPTokenizer,
                 where: str = 'caption') -> np.ndarray:
    """``[context_length]`` float32 values of the caption's token row
    (``[SOT, tokens..., EOT, padding]``, truncated like the tokenizer):
    the annotation's value on each content token, 0 at SOT, EOT and
    padding. No annotation: 1 on every content token.

    Raises:
        ValueError: the annotation does not match the caption (a span
            outside it, a word not in it, a confidence outside [0, 1],
            text CLIP's cleaning changes), naming ``where``.
    """
    annotation = annotation or {}
    kinds = [k for k in ANNOTATION_KINDS if annotation.get(k) is not None]
    if len(kinds) > 1 or set(annotation) - set(ANNOTATION_KINDS):
        raise ValueError(f'{where}: an annotation has one of '
                         f'{ANNOTATION_KINDS}, got keys {sorted(annotation)}')
    if not kinds:
        characters = np.ones(len(caption), dtype=np.float32)
    elif kinds[0] == 'noise_spans':
        characters = _noise_characters(caption, annotation['noise_spans'],
                                       where)
    else:
        characters = _confident_characters(
            caption, annotation['word_confidences'], where)
    return characters_to_tokens(caption, characters, tokenizer, where)


def characters_to_tokens(caption: str, characters: np.ndarray,
                         tokenizer: CLIPTokenizer,
                         where: str = 'caption') -> np.ndarray:
    """``[context_length]`` float32 token row of per-character values
    ``characters [len(caption)]``: each content token gets the lowest value
    of its CLIP word's characters, SOT, EOT and padding 0 (truncated like
    the tokenizer).

    Raises:
        ValueError: CLIP's cleaning changes ``caption``, naming ``where``.
    """
    try:
        words = tokenizer.word_pieces(caption)
    except ValueError as err:
        raise ValueError(f'{where}: {err}') from None
    per_token = [characters[start:end].min() for start, end, ids in words
                 for _ in ids]
    row = np.zeros(tokenizer.context_length, dtype=np.float32)
    content = per_token[:tokenizer.context_length - 2]  # room for SOT, EOT
    row[1:1 + len(content)] = content
    return row


@TRANSFORMS.register_module()
class AnnotateTokens(CaptionTokensTransform):
    """Place the annotations of a sample's captions on their tokens, for
    :class:`~gadms.models.scorers.AnnotatedTokenScorer`.

    **Required Keys:** ``captions``; optionally ``caption_annotations``
    (one annotation dict or None per caption of the *image*, as the readers
    pass them) and ``caption_idx`` (a training sample's caption among
    them).

    **Added Keys:** ``token_annotation`` (np.ndarray float32 ``[N,
    context_length]``, aligned with ``text_ids``; all 1 on content tokens
    where a caption has no annotation).

    Args:
        context_length (int): Tokens per caption. Defaults to 77.
        flip_rate (float): A deliberately degraded annotation, for sweeps
            of scorer quality: each content token's value ``v`` becomes
            ``1 - v`` with this probability (0.5: a scorer at chance). The
            flips are a fixed function of (``flip_seed``, caption text,
            position), so a caption keeps the same errors in every epoch,
            as a real scorer's would. Defaults to 0 (the annotation as
            given).
        flip_seed (int): Seed of the flips. Defaults to 0.
    """

    def __init__(self, context_length: int = 77, flip_rate: float = 0.0,
                 flip_seed: int = 0) -> None:
        super().__init__(context_length)
        if not 0.0 <= flip_rate <= 1.0:
            raise ValueError(f'flip_rate must be in [0, 1], got '
                             f'{flip_rate!r}')
        self.flip_rate = flip_rate
        self.flip_seed = flip_seed

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(context_length='
                f'{self.context_length}, flip_rate={self.flip_rate}, '
                f'flip_seed={self.flip_seed})')

    def _flipped(self, caption: str, values: np.ndarray) -> np.ndarray:
        """``values`` with each content token (value > 0 or not, between
        SOT and EOT) flipped to ``1 - v`` with probability
        ``flip_rate``."""
        if not self.flip_rate:
            return values
        content = np.zeros(len(values), dtype=bool)
        content[1:1 + len(get_tokenizer(self.context_length).encode(
            caption)[:self.context_length - 2])] = True
        draws = np.random.default_rng(
            [self.flip_seed, zlib.crc32(caption.encode('utf-8'))]).random(
                len(values))
        flip = content & (draws < self.flip_rate)
        return np.where(flip, 1.0 - values, values).astype(np.float32)

    def transform(self, results: dict) -> dict:
        captions = results['captions']
        annotations = results.get('caption_annotations')
        if annotations is None:
            chosen = [None] * len(captions)
        elif 'caption_idx' in results:
            chosen = [annotations[results['caption_idx']]]
        else:
            chosen = annotations
        if len(chosen) != len(captions):
            raise ValueError(
                f'{results.get("img_path")}: {len(annotations)} caption '
                f'annotations for {len(captions)} captions')
        first = results.get('caption_idx', 0)
        tokenizer = get_tokenizer(self.context_length)
        results['token_annotation'] = np.stack([
            self._flipped(caption, token_values(
                caption, annotation, tokenizer,
                f'{results.get("img_path")}, caption {first + k}'))
            for k, (caption, annotation) in enumerate(zip(captions, chosen))
        ])
        return results
