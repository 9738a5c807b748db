"""A picture of one text query and its ranked gallery images."""
import textwrap
from typing import List, Optional, Sequence

import cv2
import numpy as np

GREEN, RED, GREY = (60, 170, 60), (50, 50, 220), (160, 160, 160)  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text_block(lines: Sequence[str], width: int, scale: float,
                line_height: int) -> np.ndarray:
    block = np.full((line_height * len(lines) + 10, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(block, line, (10, line_height * (i + 1)), FONT, scale,
                    (20, 20, 20), 1, cv2.LINE_AA)
    return block


def _tile(image: np.ndarray, rank: int, score: float, border: tuple,
          height: int, width: int) -> np.ndarray:
    resized = cv2.resize(image, (width, height),
                         interpolation=cv2.INTER_AREA)
    framed = cv2.copyMakeBorder(resized, 6, 6, 6, 6, cv2.BORDER_CONSTANT,
                                value=border)
    caption = np.full((44, framed.shape[1], 3), 255, np.uint8)
    cv2.putText(caption, f'#{rank}', (6, 18), FONT, 0.55, (20, 20, 20), 1,
                cv2.LINE_AA)
    cv2.putText(caption, f'{score:.3f}', (6, 38), FONT, 0.5, (60, 60, 60), 1,
                cv2.LINE_AA)
    return np.concatenate([framed, caption])


def draw_retrieval(query: str,
                   hits: List[dict],
                   images: Sequence[np.ndarray],
                   query_pid: Optional[int] = None,
                   tile_size: tuple = (256, 96)) -> np.ndarray:
    """Render a query and its top-k images as a BGR picture.

    The query text is wrapped above a row of the hits, each with its rank
    and score. With ``query_pid`` and hits carrying ``pid``, a hit of the
    same person has a green border, another person a red one; otherwise
    borders are grey.

    Args:
        query (str): The caption.
        hits (list[dict]): ``rank``, ``score`` and optionally ``pid``.
        images (Sequence[np.ndarray]): BGR image of each hit.
        query_pid (int, optional): Ground-truth identity of the query.
        tile_size (tuple): ``(height, width)`` of each image.

    Returns:
        np.ndarray: ``[H, W, 3]`` uint8 BGR.
    """
    height, width = tile_size
    tiles = []
    for hit, image in zip(hits, images):
        border = GREY
        if query_pid is not None and hit.get('pid') is not None:
            border = GREEN if hit['pid'] == query_pid else RED
        tiles.append(_tile(image, hit['rank'], hit['score'], border, height,
                           width))
    gap = np.full((tiles[0].shape[0], 8, 3), 255, np.uint8)
    row = np.concatenate([part for tile in tiles for part in (gap, tile)] +
                         [gap], axis=1)
    chars_per_line = max(20, row.shape[1] // 11)
    lines = textwrap.wrap(f'Query: {query}', chars_per_line)
    header = _text_block(lines, row.shape[1], 0.6, 26)
    return np.concatenate([header, row])
