"""The contract every CLIP backbone of gadms follows."""
from abc import ABCMeta, abstractmethod
from typing import Callable, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from .dense_text import DenseTextOutput


class BaseCLIPBackbone(BaseModule, metaclass=ABCMeta):
    """Image and text towers of a CLIP model that return *all* tokens.

    Subclasses implement the towers; pooling and the shared part of the
    scorer's dense text forward live here, so retrievers, scorers and the
    inferencer never depend on which library holds the weights.

    - :meth:`encode_image`: ``[B, 3, H, W]`` normalised images ->
      ``[B, 1 + h * w, D]`` projected tokens, token 0 the global feature
      (:meth:`pool_image`).
    - :meth:`encode_text`: ``[T, L]`` ids (``L`` up to the context) ->
      ``[T, L, D]`` projected positions, the EOT row (the largest id) the
      sentence feature (:meth:`pool_text`).
    - :meth:`encode_sentences`: ``[T, L]`` ids -> ``[T, D]`` sentence
      features, computed only up to the longest caption's EOT.
    - :meth:`encode_text_dense`: the text forward with the internals of its
      last ``num_layers`` layers exposed (:class:`DenseTextOutput`), for
      the gradient-attention scorer; subclasses supply the layers and a
      hand-computed block, :meth:`_dense_tail` runs them.
    - ``embed_dim``, ``context_length``, ``image_size`` (``(H, W)``).
    """

    @property
    @abstractmethod
    def embed_dim(self) -> int:
        """Size of the joint image-text space."""

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Number of text positions."""

    @abstractmethod
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 1 + h * w, D]``."""

    @abstractmethod
    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """``[T, L]`` -> ``[T, L, D]``, for any ``L`` up to
        :attr:`context_length`."""

    @property
    def causal_text(self) -> bool:
        """Whether a text position attends only to itself and earlier
        positions (CLIP's causal mask)."""
        return True

    def encode_sentences(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Sentence features (not normalised): ``[T, L]`` ids ->
        ``[T, D]``.

        Under the causal text mask no position after a caption's EOT reaches
        its EOT row, so the forward stops at the longest caption's EOT: the
        same features for a fraction of the cost when the captions are
        short (a person caption is about 20-40 of CLIP's 77 positions).
        """
        if self.causal_text:
            text_ids = text_ids[:, :int(text_ids.argmax(dim=-1).max()) + 1]
        return self.pool_text(self.encode_text(text_ids), text_ids)

    @abstractmethod
    def encode_text_dense(self, text_ids: torch.Tensor, num_layers: int = 8,
                          heads: int = 1) -> DenseTextOutput:
        """The text forward exposing its last ``num_layers`` layers."""

    @staticmethod
    def pool_image(image_tokens: torch.Tensor) -> torch.Tensor:
        """The global image feature: ``[B, 1 + h * w, D] -> [B, D]`` (the
        class token, after the final norm and the projection)."""
        return image_tokens[:, 0]

    @staticmethod
    def pool_text(text_tokens: torch.Tensor,
                  text_ids: torch.Tensor) -> torch.Tensor:
        """Pick each caption's EOT row: ``[T, L, D], [T, L] -> [T, D]``."""
        rows = torch.arange(text_ids.shape[0], device=text_ids.device)
        return text_tokens[rows, text_ids.argmax(dim=-1)]

    @staticmethod
    def check_dense_args(num_layers: int, num_blocks: int, width: int,
                         heads: int) -> None:
        """Refuse a dense forward over more layers than the tower has, or
        a head count that does not divide the width."""
        if not 1 <= num_layers <= num_blocks:
            raise ValueError(f'num_layers must be in [1, {num_blocks}], got '
                             f'{num_layers}')
        if width % heads:
            raise ValueError(f'heads={heads} does not divide the text width '
                             f'{width}')

    @staticmethod
    def _dense_tail(x: torch.Tensor, blocks: Sequence[nn.Module],
                    dense_block: Callable[[nn.Module, torch.Tensor], Tuple],
                    finish: Callable[[torch.Tensor], torch.Tensor]
                    ) -> DenseTextOutput:
        """Run the exposed ``blocks`` by hand from their input ``x``.

        When autograd is on, ``x`` is marked as requiring grad, so the
        exposed tensors have gradients even with frozen weights.
        ``dense_block(block, x)`` returns the block output and its
        internals; ``finish`` applies the final norm and projection.
        """
        if torch.is_grad_enabled():
            x.requires_grad_(True)
        layers = []
        for block in blocks:
            x, internals = dense_block(block, x)
            layers.append(internals)
        queries, keys, values, attn, attn_outputs = map(list, zip(*layers))
        return DenseTextOutput(finish(x), queries, keys, values, attn,
                               attn_outputs)
