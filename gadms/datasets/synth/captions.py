"""Natural-language captions for SynthPerson images.

Captions are written from the identity's attributes in several sentence
shapes with synonyms, so two captions of one image rarely read alike. Optional
caption noise mimics web text: clauses that say nothing about the person, and
occasionally a wrong colour word.
"""
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .attributes import COLOURS, HAIR_COLOURS, PersonAttributes

NOUNS = {
    'man': ('man', 'guy', 'young man', 'male pedestrian', 'gentleman'),
    'woman': ('woman', 'lady', 'young woman', 'female pedestrian', 'girl'),
}
PRONOUNS = {'man': ('he', 'his'), 'woman': ('she', 'her')}
LOWER_SYNONYMS = {'trousers': ('trousers', 'pants'), 'jeans': ('jeans', ),
                  'shorts': ('shorts', ), 'skirt': ('skirt', )}
UPPER_SYNONYMS = {'t-shirt': ('t-shirt', 'tee'), 'shirt': ('shirt', ),
                  'jacket': ('jacket', ), 'coat': ('coat', ),
                  'hoodie': ('hoodie', 'hooded sweatshirt'),
                  'sweater': ('sweater', 'jumper')}
BAG_PLACES = {'backpack': 'on {his} back', 'handbag': 'in {his} hand',
              'shoulder bag': 'over {his} shoulder'}
WEAR_VERBS = ('is wearing', 'wears', 'is dressed in', 'has on')
CARRY_VERBS = ('is carrying', 'carries', 'has')
NOISE_CLAUSES = (
    'The photo was taken on a cloudy afternoon.',
    'There is a car parked in the background.',
    'The picture is a little blurry.',
    'Some trees can be seen behind.',
    'It seems to be a busy day in the city.',
    'The camera is mounted high above the street.',
    'The image has low resolution.',
    'Other people are walking far away.',
)
COLOUR_WORDS = tuple(sorted(set(COLOURS) | set(HAIR_COLOURS)))
NOISE_CLAUSE = 'clause'
NOISE_WRONG_WORD = 'wrong_word'


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


class _Phrases:
    """Noun phrases for one person, with synonyms drawn from ``rng``."""

    def __init__(self, attrs: PersonAttributes,
                 rng: np.random.Generator) -> None:
        self.attrs = attrs
        self.rng = rng
        self.he, self.his = PRONOUNS[attrs.gender]

    def noun(self) -> str:
        return _choice(self.rng, NOUNS[self.attrs.gender])

    def upper(self) -> str:
        a = self.attrs
        kind = _choice(self.rng, UPPER_SYNONYMS[a.upper_type])
        if a.upper_pattern == 'striped':
            if self.rng.random() < 0.5:
                return _article(f'striped {a.upper_colour} {kind}')
            return _article(f'{a.upper_colour} {kind} with stripes')
        return _article(f'{a.upper_colour} {kind}')

    def lower(self) -> str:
        a = self.attrs
        kind = _choice(self.rng, LOWER_SYNONYMS[a.lower_type])
        phrase = f'{a.lower_colour} {kind}'
        return _article(phrase) if a.lower_type == 'skirt' else phrase

    def shoes(self) -> str:
        return f'{self.attrs.shoe_colour} {self.attrs.shoe_type}'

    def hair(self) -> str:
        return f'{self.attrs.hair_length} {self.attrs.hair_colour} hair'

    def headwear(self) -> str:
        a = self.attrs
        return _article(f'{a.headwear_colour} {a.headwear_type}')

    def bag(self) -> str:
        a = self.attrs
        return _article(f'{a.bag_colour} {a.bag_type}')

    def bag_place(self) -> str:
        return BAG_PLACES[self.attrs.bag_type].format(his=self.his)


def _outfit_first(p: _Phrases) -> List[str]:
    verb = _choice(p.rng, WEAR_VERBS)
    return [f'a {p.noun()} {verb} {p.upper()} and {p.lower()}.']


def _hair_first(p: _Phrases) -> List[str]:
    verb = _choice(p.rng, WEAR_VERBS)
    return [f'the {p.noun()} with {p.hair()} {verb} {p.upper()}, '
            f'{p.lower()} and {p.shoes()}.']


def _this_person(p: _Phrases) -> List[str]:
    return [f'this {p.noun()} has on {p.upper()}.',
            f'{p.he} also wears {p.lower()}.']


def _walking(p: _Phrases) -> List[str]:
    return [f'a {p.noun()} walking in {p.upper()} with {p.lower()}.']


SENTENCE_SHAPES: Tuple[Callable[[_Phrases], List[str]], ...] = (
    _outfit_first, _hair_first, _this_person, _walking)


def _detail_sentences(p: _Phrases, shape: Callable) -> List[str]:
    """Sentences about the optional attributes, in random order."""
    a = p.attrs
    details = []
    if shape is not _hair_first and p.rng.random() < 0.7:
        details.append(f'{p.he} has {p.hair()}.')
    if shape is not _hair_first and p.rng.random() < 0.6:
        details.append(f'{p.his} shoes are {p.shoes()}.' if p.rng.random() <
                       0.5 else f'{p.he} wears {p.shoes()}.')
    if a.headwear_type is not None:
        details.append(f'{p.he} wears {p.headwear()} on {p.his} head.')
    if a.bag_type is not None and p.rng.random() < 0.95:
        verb = _choice(p.rng, CARRY_VERBS)
        details.append(f'{p.he} {verb} {p.bag()} {p.bag_place()}.')
    order = p.rng.permutation(len(details))
    return [details[i] for i in order]


def _add_noise_clause(caption: str,
                      rng: np.random.Generator) -> Tuple[str, List[int]]:
    """The caption with a clause before or after it, and the clause's
    ``[start, end]`` characters."""
    clause = _choice(rng, NOISE_CLAUSES)
    if rng.random() < 0.3:
        return f'{clause} {caption}', [0, len(clause)]
    return f'{caption} {clause}', [len(caption) + 1,
                                   len(caption) + 1 + len(clause)]


def _swap_colour_word(caption: str, rng: np.random.Generator,
                      spans: List[List[int]]
                      ) -> Tuple[str, Optional[List[int]]]:
    """The caption with one colour word replaced by another colour, and
    the new word's ``[start, end]`` (None when the caption has no colour
    word). ``spans`` of the old caption are moved in place to the new
    one's characters."""
    pattern = r'\b(' + '|'.join(COLOUR_WORDS) + r')\b'
    matches = list(re.finditer(pattern, caption))
    if not matches:
        return caption, None
    match = _choice(rng, matches)
    wrong = _choice(rng, [c for c in COLOURS if c != match.group(1)])
    shift = len(wrong) - len(match.group(1))
    for span in spans:
        span[:] = [p + shift if p >= match.end() else p for p in span]
    return (caption[:match.start()] + wrong + caption[match.end():],
            [match.start(), match.start() + len(wrong)])


def _capitalise(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def generate_captions(attrs: PersonAttributes,
                      rng: np.random.Generator,
                      num_captions: int = 2,
                      noise_rate: float = 0.0,
                      wrong_attribute_rate: float = 0.0
                      ) -> List[Dict[str, object]]:
    """Write ``num_captions`` captions of one image of a person.

    Args:
        attrs (PersonAttributes): The person's attributes.
        rng (np.random.Generator): Source of all choices (deterministic).
        num_captions (int): Captions to write; sentence shapes are drawn
            without replacement while possible.
        noise_rate (float): Probability that a caption gets a clause that
            says nothing about the person.
        wrong_attribute_rate (float): Probability that one colour word of a
            caption is replaced by a wrong colour.

    Returns:
        list[dict]: ``{'caption': str, 'noise': list of str,
        'noise_spans': list of [start, end]}`` where ``noise`` names what
        was injected (``'clause'``, ``'wrong_word'``) and ``noise_spans``
        its characters in the caption, in the same order (the annotation
        ``AnnotateTokens`` reads).
    """
    phrases = _Phrases(attrs, rng)
    shape_order = rng.permutation(len(SENTENCE_SHAPES))
    captions = []
    for i in range(num_captions):
        shape = SENTENCE_SHAPES[shape_order[i % len(SENTENCE_SHAPES)]]
        sentences = shape(phrases) + _detail_sentences(phrases, shape)
        caption = ' '.join(_capitalise(s) for s in sentences)
        noise, spans = [], []
        if rng.random() < noise_rate:
            caption, span = _add_noise_clause(caption, rng)
            noise.append(NOISE_CLAUSE)
            spans.append(span)
        if rng.random() < wrong_attribute_rate:
            caption, span = _swap_colour_word(caption, rng, spans)
            if span is not None:
                noise.append(NOISE_WRONG_WORD)
                spans.append(span)
        captions.append(dict(caption=caption, noise=noise,
                             noise_spans=spans))
    return captions
