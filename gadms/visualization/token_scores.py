"""Captions drawn word by word, coloured by their token scores."""
import html
from typing import List, Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
NOISE_COLOUR, INFO_COLOUR = (90, 90, 90), (40, 150, 40)  # BGR
LINE_HEIGHT = 44  # a line of words and its two probability bars


def word_rows(words: Sequence, scores: np.ndarray, p_noise: np.ndarray,
              p_info: np.ndarray, noise_drawn: np.ndarray,
              mtp_drawn: np.ndarray) -> List[dict]:
    """One dict per word of a caption, from per-token ``[N]`` arrays:
    ``text``; ``score`` (max over its pieces); ``p_noise`` / ``p_info``,
    the probability that the SDM (noise) view / the MTP view selects at
    least one of its pieces (``1 - prod(1 - p)``); ``noise`` / ``informative``,
    whether one actual draw of the neck did (any piece)."""

    def any_of(probs: np.ndarray) -> float:
        return float(1 - np.prod(1 - probs))

    return [
        dict(text=text, score=float(scores[positions].max()),
             p_noise=any_of(p_noise[positions]),
             p_info=any_of(p_info[positions]),
             noise=bool(noise_drawn[positions].any()),
             informative=bool(mtp_drawn[positions].any()))
        for text, positions in words
    ]


def _heat(score: float) -> tuple:
    """White (0) to red (1), BGR."""
    fade = int(round(255 * (1 - score)))
    return (fade, fade, 255)


def draw_token_scores(image: np.ndarray, rows: List[dict],
                      width: int = 900, image_height: int = 192,
                      full_bar: float = 0.3) -> np.ndarray:
    """The image next to its caption (rows of :func:`word_rows`): each word
    on a background from white (score 0) to red (score 1); under it two
    bars, the masking probability of the SDM view (grey) and of the MTP view
    (green), ``full_bar`` filling the word's width; and one draw of the
    masks: struck through if the SDM view replaced it, boxed green if the
    MTP view made it a target. Returns BGR ``[H, W, 3]``."""
    scale = image_height / image.shape[0]
    thumb = cv2.resize(image, (max(1, int(image.shape[1] * scale)),
                               image_height))
    text_width = width - thumb.shape[1] - 20
    lines, line, used = [], [], 0
    for row in rows:
        (w, _), _ = cv2.getTextSize(row['text'], FONT, 0.6, 1)
        if used + w + 12 > text_width and line:
            lines.append(line)
            line, used = [], 0
        line.append((row, w))
        used += w + 12
    lines.append(line)
    height = max(image_height, LINE_HEIGHT * len(lines) + 60)
    canvas = np.full((height, width, 3), 255, np.uint8)
    canvas[:image_height, :thumb.shape[1]] = thumb
    for number, line in enumerate(lines):
        x, y = thumb.shape[1] + 16, 30 + LINE_HEIGHT * number
        for row, w in line:
            cv2.rectangle(canvas, (x - 3, y - 20), (x + w + 3, y + 8),
                          _heat(row['score']), -1)
            if row['informative']:
                cv2.rectangle(canvas, (x - 4, y - 21), (x + w + 4, y + 9),
                              INFO_COLOUR, 2)
            cv2.putText(canvas, row['text'], (x, y), FONT, 0.6, (20, 20, 20),
                        1, cv2.LINE_AA)
            if row['noise']:
                cv2.line(canvas, (x - 2, y - 6), (x + w + 2, y - 6),
                         NOISE_COLOUR, 2)
            for offset, key, colour in ((12, 'p_noise', NOISE_COLOUR),
                                        (16, 'p_info', INFO_COLOUR)):
                length = int(round(w * min(1.0, row[key] / full_bar)))
                if length:
                    cv2.rectangle(canvas, (x, y + offset),
                                  (x + length, y + offset + 2), colour, -1)
            x += w + 12
    legend = [
        'background: token score (white 0 - red 1); bars: masking '
        f'probability, grey SDM view, green MTP view (full width = '
        f'{full_bar:.2f})',
        'one draw of the masks: struck out = replaced in the SDM view; '
        'green box = MTP target']
    for number, text in enumerate(legend):
        cv2.putText(canvas, text, (thumb.shape[1] + 16,
                                   height - 30 + 16 * number), FONT, 0.38,
                    (60, 60, 60), 1, cv2.LINE_AA)
    return canvas


def token_scores_html(captions: List[List[dict]],
                      image_paths: Sequence[str]) -> str:
    """An HTML page with each caption's words coloured by score (hover for
    the value), one draw of the masks: MTP targets outlined, words the SDM
    view replaced struck out."""
    parts = [
        '<!doctype html><meta charset="utf-8"><title>token scores</title>',
        '<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}'
        'span{padding:2px 3px;margin:1px;display:inline-block}'
        '.info{outline:2px solid #289628}.noise{text-decoration:'
        'line-through;color:#555}img{height:160px;margin-right:1em;'
        'vertical-align:top}</style>',
        '<p>Background: token score (white 0, red 1); hover for the score '
        'and each view\'s masking probability. One draw of the masks: '
        'struck out = replaced in the SDM view, outlined = an MTP '
        'target.</p>'
    ]
    for rows, path in zip(captions, image_paths):
        spans = []
        for row in rows:
            classes = ' '.join(c for c, on in (('info', row['informative']),
                                               ('noise', row['noise'])) if on)
            fade = int(round(255 * (1 - row['score'])))
            spans.append(
                f'<span class="{classes}" title="{row["score"]:.3f}" '
                f'data-p-noise="{row["p_noise"]:.3f}" '
                f'data-p-info="{row["p_info"]:.3f}" '
                f'style="background:rgb(255,{fade},{fade})">'
                f'{html.escape(row["text"])}</span>')
        image = f'<img src="{html.escape(path)}">' if path else ''
        parts.append(f'<p>{image}{" ".join(spans)}</p>')
    return '\n'.join(parts)
