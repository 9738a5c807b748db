"""CLIP BPE tokenizer with a reserved ``[MASK]`` id inside CLIP's vocabulary.

open_clip's ``SimpleTokenizer`` fills all 49,408 ids of CLIP's token embedding
(49,406 BPE symbols, then SOT = 49406 and EOT = 49407). Adding a special token
would give it id 49408, outside the embedding, and larger than EOT, which
breaks the ``argmax`` pooling of the sentence feature. Like IRRA, gadms frees
id 49405 by dropping the last BPE merge; unlike IRRA it also removes that merge
from the merge ranks, so the word it used to produce ("jekyll") is spelled
with smaller pieces instead of raising a ``KeyError``.
"""
import re
from functools import lru_cache
from typing import List, Sequence, Tuple

import numpy as np
from open_clip.tokenizer import SimpleTokenizer

PAD_TOKEN_ID = 0
MASK_TOKEN_ID = 49405
SOT_TOKEN_ID = 49406
EOT_TOKEN_ID = 49407
VOCAB_SIZE = 49408
MASK_TOKEN = '[MASK]'
# Text with a letter or digit and no HTML entity always keeps a token
# through CLIP's cleaning (ftfy, HTML unescaping, whitespace folding); other
# text ('&nbsp;', '\x00', a byte-order mark) may clean to nothing.
SURELY_TOKENISED = re.compile(r'[^\W_]')
# the same test for Arrow's RE2 engine
SURELY_TOKENISED_RE2 = r'[\p{L}\p{N}]'


class CLIPTokenizer:
    """open_clip's CLIP tokenizer with ``[MASK]`` reserved at id 49405.

    Args:
        context_length (int): Length of every tokenised caption. Defaults
            to 77.
    """

    def __init__(self, context_length: int = 77) -> None:
        if context_length < 2:
            raise ValueError('context_length must leave room for SOT and '
                             f'EOT, got {context_length}')
        self.context_length = context_length
        self._bpe = SimpleTokenizer(context_length=context_length)
        self._free_mask_id()

    def _free_mask_id(self) -> None:
        last_merge = max(self._bpe.bpe_ranks, key=self._bpe.bpe_ranks.get)
        merged = ''.join(last_merge)
        if self._bpe.encoder[merged] != MASK_TOKEN_ID:
            raise RuntimeError(
                'Unexpected open_clip BPE vocabulary: the last merge '
                f'{last_merge} does not own id {MASK_TOKEN_ID}')
        del self._bpe.bpe_ranks[last_merge]
        del self._bpe.encoder[merged]
        self._bpe.decoder[MASK_TOKEN_ID] = MASK_TOKEN
        self._bpe.cache.pop(merged[:-len('</w>')], None)

    def encode(self, text: str) -> List[int]:
        """Return the BPE ids of ``text`` without SOT/EOT or padding."""
        return self._bpe.encode(text)

    def word_pieces(self, text: str) -> List[Tuple[int, int, List[int]]]:
        """The BPE ids of ``text`` word by word, each with its character
        span in ``text``: ``[(start, end, ids), ...]``. Joined, the ids are
        :meth:`encode`'s.

        CLIP splits text into words (runs of letters, single digits, runs
        of punctuation, English clitics) before BPE, so a word's pieces
        never straddle two words.

        Raises:
            ValueError: CLIP's cleaning (ftfy's fixes, HTML unescaping)
                changes ``text``: its words cannot be placed on its
                characters.
        """
        bpe = self._bpe
        words = []
        for match in bpe.pat.finditer(text):
            symbols = ''.join(bpe.byte_encoder[b]
                              for b in match.group().lower().encode('utf-8'))
            words.append((match.start(), match.end(),
                          [bpe.encoder[p] for p in bpe.bpe(symbols).split()]))
        if [i for *_, ids in words for i in ids] != self.encode(text):
            raise ValueError(
                "CLIP's text cleaning (ftfy, HTML unescaping) changes this "
                f'text, so its characters cannot be mapped to tokens: '
                f'{text!r}')
        return words

    def words(self, token_ids: Sequence[int]) -> List[Tuple[str, List[int]]]:
        """Merge BPE pieces back into words.

        Returns:
            list[tuple[str, list[int]]]: each word and the positions (in
            ``token_ids``) of its pieces; SOT, EOT and padding are skipped.
        """
        special = (PAD_TOKEN_ID, SOT_TOKEN_ID, EOT_TOKEN_ID)
        words, current, positions = [], '', []
        for position, token_id in enumerate(map(int, token_ids)):
            if token_id in special:
                continue
            piece = self._bpe.decode([token_id])
            current, positions = current + piece, positions + [position]
            # a word's last piece ends with CLIP's end-of-word marker, which
            # decode turns into a space
            if piece.endswith(' ') or token_id == MASK_TOKEN_ID:
                words.append((current.strip(), positions))
                current, positions = '', []
        if positions:
            words.append((current.strip(), positions))
        return words

    def decode(self, token_ids: Sequence[int]) -> str:
        """Turn ids back into text, skipping padding, SOT and EOT."""
        special = (PAD_TOKEN_ID, SOT_TOKEN_ID, EOT_TOKEN_ID)
        pieces = []
        for token_id in token_ids:
            token_id = int(token_id)
            if token_id in special:
                continue
            if token_id == MASK_TOKEN_ID:
                pieces.append(f' {MASK_TOKEN} ')
            else:
                pieces.append(self._bpe.decode([token_id]))
        return ' '.join(''.join(pieces).split())

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenise captions to a fixed length.

        Each row is ``[SOT, tokens..., EOT, 0, 0, ...]``. A caption longer
        than the context is truncated so that EOT stays the last id.

        Args:
            texts (Sequence[str]): ``N`` captions.

        Returns:
            np.ndarray: int64 ids of shape ``[N, context_length]``.
        """
        ids = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [SOT_TOKEN_ID] + self.encode(text)
            tokens = tokens[:self.context_length - 1] + [EOT_TOKEN_ID]
            ids[row, :len(tokens)] = tokens
        return ids


def tokenises_to_nothing(text: str) -> bool:
    """Whether CLIP's tokenizer turns ``text`` into no token at all (blank
    text, HTML spaces, control characters): such a caption would be encoded
    as SOT + EOT alone."""
    if '&' not in text and SURELY_TOKENISED.search(text):
        return False
    return not get_tokenizer().encode(text)


@lru_cache(maxsize=None)
def get_tokenizer(context_length: int = 77) -> CLIPTokenizer:
    """Return a shared tokenizer; building one reads the BPE file (~1 s)."""
    return CLIPTokenizer(context_length)
