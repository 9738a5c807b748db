"""Procedural drawing of a SynthPerson pedestrian.

The outfit comes from :class:`PersonAttributes`; everything that changes
from one photo of the same person to the next (viewpoint, stride, arm swing,
scale, position, background, light, sensor noise) comes from a per-image
random generator. Drawing happens at twice the output size and is reduced
with a box filter for smooth edges.
"""
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

from .attributes import COLOURS, HAIR_COLOURS, SKIN_TONES, PersonAttributes

Colour = Tuple[int, int, int]
SUPERSAMPLE = 2


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _stripe_colour(colour_name: str) -> Colour:
    return COLOURS['black'] if colour_name in ('white', 'yellow', 'pink') \
        else COLOURS['white']


class _Painter:
    """Draws one person; lengths are fractions of the person height."""

    def __init__(self, draw: ImageDraw.ImageDraw, attrs: PersonAttributes,
                 rng: np.random.Generator, cx: float, top: float,
                 height: float) -> None:
        self.draw = draw
        self.a = attrs
        self.cx, self.top, self.h = cx, top, height
        self.view = ('front', 'back', 'left', 'right')[int(rng.integers(4))]
        self.stride = rng.uniform(0.0, 0.35)
        self.swing = rng.uniform(-0.3, 0.3)
        self.skin = SKIN_TONES[attrs.skin_tone]
        self.side = self.view in ('left', 'right')
        self.facing = -1.0 if self.view == 'left' else 1.0
        self.half_width = self.h * (0.085 if self.side else 0.14)

    def y(self, fraction: float) -> float:
        return self.top + fraction * self.h

    def box(self, x0, y0, x1, y1, colour: Colour) -> None:
        self.draw.rectangle([min(x0, x1), min(y0, y1),
                             max(x0, x1), max(y0, y1)], fill=colour)

    def limb(self, x0, y0, angle, length, width, colour: Colour) -> Tuple:
        """Draw a limb from ``(x0, y0)`` rotated by ``angle`` (radians)."""
        dx, dy = np.sin(angle) * length, np.cos(angle) * length
        nx, ny = np.cos(angle) * width / 2, -np.sin(angle) * width / 2
        self.draw.polygon([(x0 - nx, y0 - ny), (x0 + nx, y0 + ny),
                           (x0 + dx + nx, y0 + dy + ny),
                           (x0 + dx - nx, y0 + dy - ny)], fill=colour)
        return x0 + dx, y0 + dy

    def paint(self) -> None:
        self.bag_behind_body()
        self.legs()
        self.torso()
        self.arms()
        self.head()
        self.bag_over_body()

    def legs(self) -> None:
        a, h = self.a, self.h
        hip_y, leg_len = self.y(0.50), 0.45 * h
        lower = COLOURS[a.lower_colour]
        cover = {'shorts': 0.40, 'skirt': 0.0}.get(a.lower_type, 1.0)
        offsets = (-0.05 * h, 0.05 * h) if not self.side else (0.0, 0.0)
        for sign, dx in zip((-1, 1), offsets):
            angle = sign * self.stride * (1.0 if self.side else 0.3)
            x0 = self.cx + dx
            knee = self.limb(x0, hip_y, angle, leg_len * cover, 0.10 * h,
                             lower) if cover else (x0, hip_y)
            foot = self.limb(knee[0], knee[1], angle, leg_len * (1 - cover),
                             0.085 * h, self.skin)
            self.shoe(foot)
        if a.lower_type == 'skirt':
            w = self.half_width
            self.draw.polygon([(self.cx - w * 0.9, hip_y),
                               (self.cx + w * 0.9, hip_y),
                               (self.cx + w * 1.3, self.y(0.72)),
                               (self.cx - w * 1.3, self.y(0.72))],
                              fill=lower)

    def shoe(self, foot: Tuple[float, float]) -> None:
        colour = COLOURS[self.a.shoe_colour]
        height = 0.10 if self.a.shoe_type == 'boots' else 0.045
        toe = 0.07 * self.h * (self.facing if self.side else 0.4)
        self.box(foot[0] - 0.05 * self.h - max(0, -toe), foot[1] - height *
                 self.h, foot[0] + 0.05 * self.h + max(0, toe), foot[1] +
                 0.02 * self.h, colour)

    def torso(self) -> None:
        a, w = self.a, self.half_width
        colour = COLOURS[a.upper_colour]
        bottom = self.y(0.64 if a.upper_type == 'coat' else 0.52)
        shoulder = self.y(0.16)
        corners = [(self.cx - w, shoulder), (self.cx + w, shoulder),
                   (self.cx + w * 0.9, bottom), (self.cx - w * 0.9, bottom)]
        self.draw.polygon(corners, fill=colour)
        if a.upper_pattern == 'striped':
            stripe = _stripe_colour(a.upper_colour)
            for y in np.arange(shoulder + 0.03 * self.h, bottom, 0.05 *
                               self.h):
                self.box(self.cx - w * 0.92, y, self.cx + w * 0.92,
                         y + 0.015 * self.h, stripe)
        if a.upper_type in ('jacket', 'coat') and self.view == 'front':
            self.box(self.cx - 0.006 * self.h, shoulder, self.cx + 0.006 *
                     self.h, bottom, _shade(colour, 0.55))
        if a.upper_type == 'hoodie' and self.view != 'front':
            hood_x = self.cx - self.facing * 0.05 * self.h * self.side
            self.draw.ellipse([hood_x - 0.07 * self.h, self.y(0.10),
                               hood_x + 0.07 * self.h, self.y(0.22)],
                              fill=_shade(colour, 0.8))

    def arms(self) -> None:
        a, h = self.a, self.h
        colour = COLOURS[a.upper_colour]
        sleeve = 0.4 if a.upper_type == 't-shirt' else 1.0
        arm_len = 0.33 * h
        xs = (self.cx,) if self.side else (self.cx - self.half_width - 0.03 *
                                           h, self.cx + self.half_width +
                                           0.03 * h)
        self.hands = []
        for i, x0 in enumerate(xs):
            angle = self.swing * (1 if i == 0 else -1)
            elbow = self.limb(x0, self.y(0.17), angle, arm_len * sleeve,
                              0.065 * h, colour)
            hand = self.limb(elbow[0], elbow[1], angle, arm_len * (1 - sleeve),
                             0.055 * h, self.skin)
            self.draw.ellipse([hand[0] - 0.03 * h, hand[1] - 0.03 * h,
                               hand[0] + 0.03 * h, hand[1] + 0.03 * h],
                              fill=self.skin)
            self.hands.append(hand)

    def head(self) -> None:
        a, h = self.a, self.h
        hair = HAIR_COLOURS[a.hair_colour]
        hx = self.cx + (0.015 * h * self.facing if self.side else 0.0)
        head = [hx - 0.06 * h, self.y(0.005), hx + 0.06 * h, self.y(0.15)]
        if a.hair_length == 'long':
            self.box(hx - 0.07 * h, self.y(0.03), hx + 0.07 * h,
                     self.y(0.30), hair)
        self.box(self.cx - 0.025 * h, self.y(0.12), self.cx + 0.025 * h,
                 self.y(0.17), self.skin)
        self.draw.ellipse(head, fill=hair if self.view == 'back' else
                          self.skin)
        self.draw.chord([head[0], head[1], head[2], self.y(0.10)], 180, 360,
                        fill=hair)
        if a.headwear_type is not None:
            self.headwear(hx)

    def headwear(self, hx: float) -> None:
        a, h = self.a, self.h
        colour = COLOURS[a.headwear_colour]
        if a.headwear_type == 'hat':
            self.box(hx - 0.12 * h, self.y(0.035), hx + 0.12 * h,
                     self.y(0.05), colour)
            self.box(hx - 0.06 * h, self.y(-0.02), hx + 0.06 * h,
                     self.y(0.04), colour)
            return
        self.draw.chord([hx - 0.065 * h, self.y(-0.01), hx + 0.065 * h,
                         self.y(0.11)], 180, 360, fill=colour)
        if a.headwear_type == 'cap' and self.view != 'back':
            brim = 0.10 * h * (self.facing if self.side else 0.0)
            self.box(hx - 0.05 * h + min(0, brim), self.y(0.045),
                     hx + 0.05 * h + max(0, brim), self.y(0.06), colour)

    def bag_behind_body(self) -> None:
        """A backpack seen from the front or the side peeks out behind."""
        if self.a.bag_type != 'backpack' or self.view == 'back':
            return
        colour = COLOURS[self.a.bag_colour]
        h, w = self.h, self.half_width
        if self.side:
            x = self.cx - self.facing * (w + 0.08 * h)
            self.box(x - 0.08 * h, self.y(0.18), x + 0.08 * h, self.y(0.45),
                     colour)
        else:
            self.box(self.cx - w - 0.04 * h, self.y(0.20),
                     self.cx + w + 0.04 * h, self.y(0.44), colour)

    def bag_over_body(self) -> None:
        """Bag parts in front of the body from the camera's viewpoint."""
        a, h, w = self.a, self.h, self.half_width
        if a.bag_type is None:
            return
        colour = COLOURS[a.bag_colour]
        if a.bag_type == 'backpack':
            if self.view == 'back':
                self.box(self.cx - 0.7 * w, self.y(0.19), self.cx + 0.7 * w,
                         self.y(0.46), colour)
            elif self.view == 'front':
                for dx in (-0.6 * w, 0.6 * w):
                    self.box(self.cx + dx - 0.012 * h, self.y(0.16),
                             self.cx + dx + 0.012 * h, self.y(0.40), colour)
        elif a.bag_type == 'handbag':
            hx, hy = self.hands[-1]
            self.box(hx - 0.05 * h, hy, hx + 0.05 * h, hy + 0.09 * h, colour)
        else:
            bag_x = self.cx + w * 0.9
            self.draw.line([(self.cx - w * 0.8, self.y(0.16)),
                            (bag_x, self.y(0.50))],
                           fill=colour, width=max(1, int(0.02 * h)))
            self.box(bag_x - 0.06 * h, self.y(0.46), bag_x + 0.06 * h,
                     self.y(0.58), colour)


def _background(size: Tuple[int, int],
                rng: np.random.Generator) -> Image.Image:
    height, width = size
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 170, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    pixels = top * (1 - ramp) + bottom * ramp
    pixels = np.broadcast_to(pixels, (height, width, 3)).copy()
    horizon = int(height * rng.uniform(0.6, 0.8))
    pixels[horizon:] = rng.uniform(50, 150, 3)
    canvas = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, horizon)
        x1 = x0 + rng.uniform(5, width / 2)
        y1 = y0 + rng.uniform(5, height / 3)
        draw.rectangle([x0, y0, x1, y1],
                       fill=tuple(int(c) for c in rng.uniform(40, 210, 3)))
    return canvas


def render_person(attrs: PersonAttributes,
                  rng: np.random.Generator,
                  size: Tuple[int, int] = (128, 48)) -> np.ndarray:
    """Draw one photo of a person.

    Args:
        attrs (PersonAttributes): The person's outfit.
        rng (np.random.Generator): Draws the viewpoint, pose, scale,
            position, background and lighting of this photo.
        size (tuple[int, int]): Output ``(height, width)``.

    Returns:
        np.ndarray: uint8 image ``[height, width, 3]`` in BGR order (the
        order ``LoadImageFromFile`` returns).
    """
    height, width = size
    big = (height * SUPERSAMPLE, width * SUPERSAMPLE)
    canvas = _background(big, rng)
    person_h = big[0] * rng.uniform(0.78, 0.93)
    cx = big[1] * (0.5 + rng.uniform(-0.08, 0.08))
    top = big[0] - person_h - big[0] * rng.uniform(0.01, 0.05)
    _Painter(ImageDraw.Draw(canvas), attrs, rng, cx, top, person_h).paint()
    canvas = canvas.resize((width, height), Image.BOX)
    pixels = np.asarray(canvas, dtype=np.float32)
    light = rng.uniform(0.7, 1.25) * rng.uniform(0.92, 1.08, 3)
    pixels = pixels * light + rng.normal(0, rng.uniform(0, 6), pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)[..., ::-1].copy()
