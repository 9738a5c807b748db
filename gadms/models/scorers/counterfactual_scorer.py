from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from gadms.datasets.attribute_lexicon import AttributeLexicon
from gadms.datasets.transforms.tokenizer import (EOT_TOKEN_ID, SOT_TOKEN_ID,
                                                 get_tokenizer)
from gadms.registry import MODELS
from ..backbones import BaseCLIPBackbone
from .base import BaseTokenScorer
from .utils import content_mask

OUTPUTS = ('weight', 'win')


def _word_ends(context_length: int) -> torch.Tensor:
    """``[vocab]`` bool: ids whose BPE piece ends a word (CLIP's ``</w>``)
    or that end one by themselves (SOT)."""
    decoder = get_tokenizer(context_length)._bpe.decoder
    ends = torch.zeros(max(decoder) + 1, dtype=torch.bool)
    for token_id, piece in decoder.items():
        ends[token_id] = piece.endswith('</w>')
    ends[SOT_TOKEN_ID] = True
    return ends


@MODELS.register_module()
class CounterfactualTokenScorer(BaseTokenScorer):
    """Does the model itself prefer the written colour word to every other
    colour? The counterfactual check of an attribute word (issue #35).

    For each colour word of the lexicon in a caption (matched on whole BPE
    words, the longest form first), the caption is written again with each
    other colour of the lexicon in its place (the colour's first form), and
    every variant of the batch is encoded in one text forward. With the
    cosine similarities ``c_0`` (the caption as written) and ``c_k`` (each
    alternative) to the caption's own image, the word scores

    - ``'weight'``: ``softmax(c / temperature)_0``, the written word's weight
      among its alternatives;
    - ``'win'``: 1 when the written word has the highest similarity, else 0.

    Every token of the word gets its score; other content tokens score 1,
    SOT, EOT and padding 0. Variants longer than the context are cut, the
    EOT kept last.

    Args:
        lexicon (dict): The attribute lexicon (only its colours are used).
        temperature (float): Softmax temperature of ``'weight'``.
        output (str): ``'weight'`` or ``'win'``.
        context_length (int): Token positions of a caption. Defaults to 77.

    Inputs of :meth:`forward`: ``backbone``, ``text_ids [B, N]``,
    ``image_tokens [B, 1 + HW, D]``. Output: detached fp32 ``[B, N]``.
    """

    def __init__(self, lexicon: dict, temperature: float = 0.01,
                 output: str = 'weight', context_length: int = 77) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if output not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got '
                             f'{output!r}')
        lexicon = AttributeLexicon.build(lexicon)
        tokenizer = get_tokenizer(context_length)
        # every form of every colour, longest first: (ids, colour index)
        names = list(lexicon.colours)
        forms = [(tokenizer.encode(form), names.index(name))
                 for name, surfaces in lexicon.colours.items()
                 for form in surfaces]
        self.forms: List[Tuple[List[int], int]] = sorted(
            forms, key=lambda form: -len(form[0]))
        # each colour written as its first form, right-padded with 0
        written = [tokenizer.encode(surfaces[0])
                   for surfaces in lexicon.colours.values()]
        width = max(map(len, written))
        self.register_buffer(
            'colour_ids', torch.tensor([ids + [0] * (width - len(ids))
                                        for ids in written]), persistent=False)
        self.register_buffer('colour_lengths',
                             torch.tensor([len(ids) for ids in written]),
                             persistent=False)
        self.register_buffer('word_ends', _word_ends(context_length),
                             persistent=False)
        self.temperature = temperature
        self.output = output

    def find_colours(self, text_ids: torch.Tensor) -> torch.Tensor:
        """The colour words of ``text_ids [B, N]``: ``[W, 4]`` long rows
        ``(caption, first position, length, colour index)``, whole BPE words
        only, non-overlapping, the longest form first."""
        length = text_ids.shape[1]
        covered = torch.zeros_like(text_ids, dtype=torch.bool)
        content = content_mask(text_ids)
        # a form may start after SOT or a word's last piece
        starts_word = torch.zeros_like(covered)
        starts_word[:, 1:] = self.word_ends[text_ids[:, :-1].clamp(
            max=len(self.word_ends) - 1)]
        found = []
        for ids, colour in self.forms:
            size = len(ids)
            if size > length:
                continue
            form = torch.tensor(ids, device=text_ids.device)
            windows = text_ids.unfold(1, size, 1)  # [B, N - size + 1, size]
            hit = (windows == form).all(-1) & starts_word[:, :windows.shape[1]]
            hit &= ~covered.unfold(1, size, 1).any(-1)
            hit &= content.unfold(1, size, 1).all(-1)
            rows, starts = hit.nonzero(as_tuple=True)
            for offset in range(size):
                covered[rows, starts + offset] = True
            found.append(torch.stack([
                rows, starts, torch.full_like(rows, size),
                torch.full_like(rows, colour)], dim=1))
        return torch.cat(found) if found else text_ids.new_zeros((0, 4))

    def variants(self, text_ids: torch.Tensor,
                 words: torch.Tensor) -> torch.Tensor:
        """``[W, K, N]`` ids: for each colour word of ``words [W, 4]``, its
        caption with colour ``k`` written in the word's place (every
        colour of the lexicon, the word's own included)."""
        length = text_ids.shape[1]
        num_colours = len(self.colour_lengths)
        rows, starts, sizes = words[:, 0], words[:, 1], words[:, 2]
        positions = torch.arange(length, device=text_ids.device)
        start = starts[:, None, None]
        new_size = self.colour_lengths[None, :, None]  # [1, K, 1]
        # where each position of a variant reads from: the caption before
        # the word, the colour's ids, then the caption after the word
        offset = positions - start
        source = torch.where(offset < 0, positions,
                             positions - new_size + sizes[:, None, None])
        in_colour = (offset >= 0) & (offset < new_size)
        caption = text_ids[rows][:, None, :].expand(-1, num_colours, -1)
        past_end = source >= length
        read = caption.gather(2, source.clamp(0, length - 1).expand(
            -1, num_colours, -1))
        colour = self.colour_ids[None].expand(len(words), -1, -1).gather(
            2, offset.clamp(0, self.colour_ids.shape[1] - 1).expand(
                -1, num_colours, -1))
        out = torch.where(in_colour, colour,
                          read.masked_fill(past_end, 0))
        # a variant cut by the context keeps its EOT last
        cut = ~(out == EOT_TOKEN_ID).any(-1)
        out[..., -1] = torch.where(cut, EOT_TOKEN_ID, out[..., -1])
        return out

    @staticmethod
    def _spans(words: torch.Tensor, length: int) -> torch.Tensor:
        """``[W, N]`` bool: the positions of each word of ``words``."""
        positions = torch.arange(length, device=words.device)
        return (positions >= words[:, 1:2]) & (
            positions < words[:, 1:2] + words[:, 2:3])

    def _touches(self, words: torch.Tensor,
                 positions: torch.Tensor) -> torch.Tensor:
        """``[W]`` bool: the words with a token in ``positions``."""
        in_word = self._spans(words, positions.shape[1])
        return (in_word & positions[words[:, 0]]).any(dim=1)

    @torch.no_grad()
    def word_scores(self, backbone: BaseCLIPBackbone, text_ids: torch.Tensor,
                    image_tokens: torch.Tensor,
                    words: torch.Tensor) -> torch.Tensor:
        """``[W]`` score of each colour word of ``words [W, 4]``."""
        variants = self.variants(text_ids, words)  # [W, K, N]
        num_words, num_colours, length = variants.shape
        # the caption as written takes the place of its own colour's
        # variant, whose form may differ from the written one ('gray')
        own = words[:, 3]
        variants[torch.arange(num_words), own] = text_ids[words[:, 0]]
        flat = variants.reshape(-1, length)
        texts = backbone.encode_sentences(flat)
        texts = F.normalize(texts.float(), dim=-1).view(
            num_words, num_colours, -1)
        images = F.normalize(
            backbone.pool_image(image_tokens).float(), dim=-1)[words[:, 0]]
        sims = torch.einsum('wkd,wd->wk', texts, images)
        if self.output == 'win':
            return (sims.argmax(dim=1) == own).float()
        return (sims / self.temperature).softmax(dim=1)[
            torch.arange(num_words), own]

    @torch.no_grad()
    def forward(self,
                backbone: BaseCLIPBackbone,
                text_ids: torch.Tensor,
                image_tokens: torch.Tensor,
                data_samples: Optional[list] = None,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores ``[B, N]``; with ``positions [B, N]`` (bool), only the
        colour words with a token there are checked (the others score 1),
        which saves their variants' text forward."""
        content = content_mask(text_ids)
        scores = content.float()
        words = self.find_colours(text_ids)
        if positions is not None and len(words):
            words = words[self._touches(words, positions)]
        if not len(words):
            return scores
        values = self.word_scores(backbone, text_ids, image_tokens, words)
        in_word = self._spans(words, text_ids.shape[1])
        per_word = torch.where(in_word, values[:, None],
                               torch.ones_like(in_word, dtype=torch.float))
        # each caption's tokens take the lowest score of its words
        scores = scores.scatter_reduce(
            0, words[:, :1].expand(-1, text_ids.shape[1]), per_word,
            reduce='amin')
        return scores * content
