"""Identity attributes of SynthPerson pedestrians.

An identity is a fixed outfit (clothes, colours, bag, hair, headwear, skin
tone). Everything drawn or written about a person comes from these values,
so captions and pictures agree.
"""
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import numpy as np

# Colour names with the RGB used to draw them.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'black': (25, 25, 28),
    'white': (235, 235, 230),
    'gray': (128, 128, 128),
    'red': (200, 30, 35),
    'blue': (35, 70, 200),
    'green': (40, 150, 60),
    'yellow': (235, 210, 40),
    'orange': (240, 130, 30),
    'pink': (240, 150, 190),
    'purple': (120, 50, 160),
    'brown': (115, 70, 35),
}
HAIR_COLOURS: Dict[str, Tuple[int, int, int]] = {
    'black': (20, 18, 18),
    'brown': (95, 60, 30),
    'blonde': (225, 195, 110),
    'gray': (150, 150, 150),
}
SKIN_TONES = ((245, 210, 180), (225, 180, 140), (180, 130, 90),
              (120, 80, 55))

UPPER_TYPES = ('t-shirt', 'shirt', 'jacket', 'coat', 'hoodie', 'sweater')
SHORT_SLEEVED = ('t-shirt', )
LOWER_TYPES = ('trousers', 'jeans', 'shorts', 'skirt')
SHOE_TYPES = ('sneakers', 'boots', 'shoes')
BAG_TYPES = ('backpack', 'handbag', 'shoulder bag')
HEADWEAR_TYPES = ('cap', 'hat', 'beanie')
HAIR_LENGTHS = ('short', 'long')
PATTERNS = ('plain', 'striped')


@dataclass(frozen=True)
class PersonAttributes:
    """The outfit and looks of one identity (names, not pixels)."""

    gender: str
    skin_tone: int
    hair_length: str
    hair_colour: str
    upper_type: str
    upper_colour: str
    upper_pattern: str
    lower_type: str
    lower_colour: str
    shoe_type: str
    shoe_colour: str
    bag_type: Optional[str]
    bag_colour: Optional[str]
    headwear_type: Optional[str]
    headwear_colour: Optional[str]

    def to_dict(self) -> dict:
        """Plain-dict form, stored in data infos and JSON files."""
        return asdict(self)


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def sample_attributes(rng: np.random.Generator) -> PersonAttributes:
    """Draw one identity's attributes from ``rng``."""
    colours = tuple(COLOURS)
    gender = _pick(rng, ('man', 'woman'))
    lower_types = LOWER_TYPES if gender == 'woman' else LOWER_TYPES[:3]
    has_bag = rng.random() < 0.6
    has_headwear = rng.random() < 0.35
    return PersonAttributes(
        gender=gender,
        skin_tone=int(rng.integers(len(SKIN_TONES))),
        hair_length=_pick(rng, ('short', 'long') if gender == 'woman' else
                          ('short', 'short', 'short', 'long')),
        hair_colour=_pick(rng, tuple(HAIR_COLOURS)),
        upper_type=_pick(rng, UPPER_TYPES),
        upper_colour=_pick(rng, colours),
        upper_pattern='striped' if rng.random() < 0.2 else 'plain',
        lower_type=_pick(rng, lower_types),
        lower_colour=_pick(rng, colours),
        shoe_type=_pick(rng, SHOE_TYPES),
        shoe_colour=_pick(rng, ('black', 'white', 'brown', 'gray', 'red',
                                'blue')),
        bag_type=_pick(rng, BAG_TYPES) if has_bag else None,
        bag_colour=_pick(rng, colours) if has_bag else None,
        headwear_type=_pick(rng, HEADWEAR_TYPES) if has_headwear else None,
        headwear_colour=_pick(rng, colours) if has_headwear else None,
    )
