"""Attribute statements in captions: which colour a caption gives to which
garment, read with a lexicon that a config supplies.

A lexicon names *values* (colours) and *attributes* (garment classes), each
with its surface forms::

    dict(colours=dict(grey=['grey', 'gray'], navy=['dark blue', 'navy']),
         garments=dict(upper=['jacket', 'coat', 't-shirt'],
                       lower=['trousers', 'pants', 'jeans']),
         max_gap=3)

Surface forms are matched case-insensitively on whole words (runs of
letters and digits; a hyphen or a space both separate words, so
``'light-coloured'`` and ``'light coloured'`` are the same form), the
longest form first. A colour word describes the first garment word that
follows it within ``max_gap`` words of the same sentence ("a red striped
shirt"); failing that, the nearest garment word before it within
``max_gap`` words of the same sentence ("his shirt is red"); failing that,
no attribute (the statement is kept with ``attribute=None``).
"""
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

# the words of a caption and of a surface form (lower case)
WORD = re.compile(r'[a-z0-9]+')
# what ends a sentence between two words
SENTENCE_END = re.compile(r'[.!?;]')


class Statement(NamedTuple):
    """A colour word of a caption: its value (the colour's canonical name),
    the attribute it describes (a garment class, or None when no garment
    is near it) and its ``[start, end)`` characters in the caption."""
    value: str
    attribute: Optional[str]
    start: int
    end: int


def _forms(table: Dict[str, Sequence[str]],
           kind: str) -> Dict[Tuple[str, ...], str]:
    """Surface form (a tuple of words) -> canonical name, refusing a form
    that names two entries."""
    if not isinstance(table, dict) or not table:
        raise ValueError(f'attribute lexicon: {kind} must be a non-empty '
                         f'dict of name -> list of surface forms, got '
                         f'{table!r}')
    forms = {}
    for name, surfaces in table.items():
        if isinstance(surfaces, str) or not surfaces:
            raise ValueError(f'attribute lexicon: {kind}[{name!r}] must be a '
                             f'non-empty list of surface forms, got '
                             f'{surfaces!r}')
        for surface in surfaces:
            words = tuple(WORD.findall(str(surface).lower()))
            if not words:
                raise ValueError(f'attribute lexicon: {kind}[{name!r}] has '
                                 f'a form with no word: {surface!r}')
            if forms.get(words, name) != name:
                raise ValueError(
                    f'attribute lexicon: the {kind} form {surface!r} names '
                    f'both {forms[words]!r} and {name!r}')
            forms[words] = name
    return forms


class AttributeLexicon:
    """Finds the colour statements of captions (see the module docstring).

    Args:
        colours (dict): Canonical colour -> surface forms.
        garments (dict): Garment class -> surface forms.
        max_gap (int): Words allowed between a colour and its garment.
    """

    def __init__(self, colours: Dict[str, Sequence[str]],
                 garments: Dict[str, Sequence[str]],
                 max_gap: int = 3) -> None:
        if not isinstance(max_gap, int) or max_gap < 0:
            raise ValueError(f'attribute lexicon: max_gap must be a '
                             f'non-negative int, got {max_gap!r}')
        self.colour_forms = _forms(colours, 'colours')
        self.garment_forms = _forms(garments, 'garments')
        clash = set(self.colour_forms) & set(self.garment_forms)
        if clash:
            raise ValueError(f'attribute lexicon: forms that are both a '
                             f'colour and a garment: {sorted(clash)}')
        self.colours = {name: [' '.join(f) for f, n in
                               self.colour_forms.items() if n == name]
                        for name in colours}
        self.max_gap = max_gap
        self._longest = max(map(len, [*self.colour_forms,
                                      *self.garment_forms]))

    @classmethod
    def build(cls, lexicon) -> 'AttributeLexicon':
        """An ``AttributeLexicon`` from itself or its config dict."""
        if isinstance(lexicon, cls):
            return lexicon
        if not isinstance(lexicon, dict):
            raise TypeError(f'attribute lexicon: expected a dict(colours=..., '
                            f'garments=...), got {type(lexicon).__name__}')
        unknown = set(lexicon) - {'colours', 'garments', 'max_gap'}
        if unknown:
            raise ValueError(f'attribute lexicon: unknown keys '
                             f'{sorted(unknown)}')
        return cls(**lexicon)

    def _mentions(self, caption: str) -> List[tuple]:
        """Lexicon words of ``caption`` in order: ``(kind, name, start,
        end, first word, last word, sentence)`` (word and sentence
        indices), longest forms first."""
        words = [(m.start(), m.end(), m.group())
                 for m in WORD.finditer(caption.lower())]
        sentence, sentences = 0, []
        for index, (start, _, _) in enumerate(words):
            if index and SENTENCE_END.search(caption, words[index - 1][1],
                                             start):
                sentence += 1
            sentences.append(sentence)
        mentions, index = [], 0
        while index < len(words):
            for length in range(min(self._longest, len(words) - index), 0,
                                -1):
                span = words[index:index + length]
                key = tuple(word for *_, word in span)
                kind = 'colour' if key in self.colour_forms else (
                    'garment' if key in self.garment_forms else None)
                if kind and sentences[index] == sentences[index + length - 1]:
                    forms = self.colour_forms if kind == 'colour' \
                        else self.garment_forms
                    mentions.append((kind, forms[key], span[0][0],
                                     span[-1][1], index, index + length - 1,
                                     sentences[index]))
                    index += length
                    break
            else:
                index += 1
        return mentions

    def statements(self, caption: str) -> List[Statement]:
        """The colour statements of ``caption``, in caption order."""
        mentions = self._mentions(caption)
        garments = [m for m in mentions if m[0] == 'garment']
        found = []
        for kind, value, start, end, first, last, sentence in mentions:
            if kind != 'colour':
                continue
            # words strictly between the colour and the garment
            after = [g for g in garments if g[6] == sentence
                     and 0 <= g[4] - last - 1 <= self.max_gap]
            before = [g for g in garments if g[6] == sentence
                      and 0 <= first - g[5] - 1 <= self.max_gap]
            attribute = after[0][1] if after else (
                before[-1][1] if before else None)
            found.append(Statement(value, attribute, start, end))
        return found


def consensus_spans(captions: Sequence[str], lexicon: AttributeLexicon,
                    neutral: float = 0.5) -> List[List[tuple]]:
    """For each caption of a group, ``[(start, end, value), ...]``: every
    colour word and its consensus value.

    The value of a colour word stating colour ``c`` of attribute ``a`` is
    the fraction of the *other* captions of the group that state ``c`` for
    ``a``, among those that state ``a`` at all (a caption stating two
    colours of ``a`` agrees when either is ``c``). A colour word whose
    attribute no other caption states, or that describes no garment, gets
    ``neutral``.
    """
    statements = [lexicon.statements(caption) for caption in captions]
    stated: List[Dict[str, set]] = []
    for found in statements:
        colours = {}
        for statement in found:
            if statement.attribute is not None:
                colours.setdefault(statement.attribute, set()).add(
                    statement.value)
        stated.append(colours)
    spans = []
    for index, found in enumerate(statements):
        values = []
        for statement in found:
            others = [colours[statement.attribute]
                      for other, colours in enumerate(stated)
                      if other != index and statement.attribute in colours]
            value = neutral if not others else sum(
                statement.value in colours for colours in others) / len(
                    others)
            values.append((statement.start, statement.end, float(value)))
        spans.append(values)
    return spans
