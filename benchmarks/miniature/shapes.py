"""Stage 0 data: coloured shapes with clean captions ("CLIP pretraining").

A different domain from SynthPerson: geometric objects instead of people,
shape nouns instead of clothing, flat drawing; only the colour names are
shared, as a web-pretrained CLIP shares its colour words with person
captions. Written as a WebPerson parquet corpus (one pid per image, two
captions), so gadms trains on it unchanged.
"""
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from gadms.datasets.synth.attributes import COLOURS

SHAPES = ('circle', 'square', 'triangle', 'diamond', 'ring', 'cross')
SIZES = ('small', 'large')
PLACES = ('above', 'below', 'next to')
BACKGROUNDS = ('plain', 'dotted', 'striped')


def _polygon(shape: str, cx: float, cy: float, r: float) -> List[Tuple]:
    if shape == 'triangle':
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == 'diamond':
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == 'cross':
        t = r / 3
        return [(cx - t, cy - r), (cx + t, cy - r), (cx + t, cy - t),
                (cx + r, cy - t), (cx + r, cy + t), (cx + t, cy + t),
                (cx + t, cy + r), (cx - t, cy + r), (cx - t, cy + t),
                (cx - r, cy + t), (cx - r, cy - t), (cx - t, cy - t)]
    return [(cx - r, cy - r), (cx + r, cy + r)]


def _draw(draw: ImageDraw.ImageDraw, shape: str, colour: str, cx: float,
          cy: float, r: float) -> None:
    fill = COLOURS[colour]
    box = _polygon(shape, cx, cy, r)
    if shape == 'circle':
        draw.ellipse(box, fill=fill)
    elif shape == 'ring':
        draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))
    elif shape == 'square':
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(box, fill=fill)


def draw_scene(rng: np.random.Generator, size=(128, 48)) -> Tuple:
    """One image (BGR uint8) and its attributes."""
    colours = list(COLOURS)
    attrs = dict(
        main=SHAPES[rng.integers(len(SHAPES))],
        main_colour=colours[rng.integers(len(colours))],
        other=SHAPES[rng.integers(len(SHAPES))],
        other_colour=colours[rng.integers(len(colours))],
        place=PLACES[rng.integers(len(PLACES))],
        background=BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        background_colour=colours[rng.integers(len(colours))])
    height, width = size
    tone = np.array(COLOURS[attrs['background_colour']]) * 0.5 + 60
    canvas = Image.new('RGB', (width, height), tuple(int(v) for v in tone))
    draw = ImageDraw.Draw(canvas)
    if attrs['background'] == 'striped':
        for y in range(0, height, 8):
            draw.line([(0, y), (width, y)], fill=(200, 200, 200), width=2)
    elif attrs['background'] == 'dotted':
        for y in range(4, height, 10):
            for x in range(4, width, 10):
                draw.point((x, y), fill=(230, 230, 230))
    main_y = height * (0.62 if attrs['place'] == 'above' else 0.38)
    other_y = height * (0.2 if attrs['place'] == 'above' else 0.8)
    other_x = width / 2
    if attrs['place'] == 'next to':
        main_y = other_y = height / 2
        other_x = width * 0.8
    _draw(draw, attrs['main'], attrs['main_colour'],
          width * (0.4 if attrs['place'] == 'next to' else 0.5), main_y,
          width * 0.3)
    _draw(draw, attrs['other'], attrs['other_colour'], other_x, other_y,
          width * 0.14)
    pixels = np.asarray(canvas, np.float32) + rng.normal(0, 4, (height,
                                                                width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)[..., ::-1].copy(), attrs


def _article(word: str) -> str:
    return ('an ' if word[0] in 'aeiou' else 'a ') + word


def captions(attrs: dict, rng: np.random.Generator) -> List[str]:
    """Two clean captions in different phrasings."""
    a = attrs
    place = {'above': 'under', 'below': 'over', 'next to': 'beside'}
    forms = [
        f'A large {a["main_colour"]} {a["main"]} with a small '
        f'{a["other_colour"]} {a["other"]} {a["place"]} it.',
        f'There is a small {a["other_colour"]} {a["other"]} '
        f'{place[a["place"]]} a big {a["main_colour"]} {a["main"]}, on a '
        f'{a["background"]} {a["background_colour"]} background.',
        f'{_article(a["main_colour"]).capitalize()} {a["main"]} on a '
        f'{a["background_colour"]} background, and a little '
        f'{a["other_colour"]} {a["other"]}.',
    ]
    order = rng.permutation(len(forms))
    return [forms[order[0]], forms[order[1]]]


def write_shapes_corpus(out_dir: str, num_images: int, seed: int = 0,
                        size=(128, 48)) -> str:
    """Write ``num_images`` shape images with two captions each as a
    WebPerson parquet shard under ``out_dir/data``; returns the folder."""
    rows = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        image, attrs = draw_scene(rng, size)
        ok, png = cv2.imencode('.png', image)
        if not ok:
            raise OSError(f'could not encode shape image {index}')
        first, second = captions(attrs, rng)
        path = f'shapes/{index:06d}.png'
        rows.append(dict(image=dict(bytes=png.tobytes(), path=path),
                         image_path=path, caption1=first, caption2=second))
    folder = osp.join(out_dir, 'data')
    os.makedirs(folder, exist_ok=True)
    part = osp.join(folder, 'train-00000-of-00001.parquet.part')
    pq.write_table(pa.Table.from_pylist(rows), part, row_group_size=200)
    os.replace(part, part[:-len('.part')])
    return folder
