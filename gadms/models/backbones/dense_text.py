"""The text forward the gradient-attention scorer differentiates."""
import math
from typing import Callable, List, NamedTuple, Tuple

import torch


class DenseTextOutput(NamedTuple):
    """What a backbone's ``encode_text_dense`` exposes.

    Per dense layer (oldest first), all ``[B, N, W]`` with ``W`` the text
    width: ``queries``, ``keys``, ``values`` (after the input projection)
    and ``attn_outputs`` (attention output before the output projection);
    ``attn`` is ``[B, N, N]`` (averaged over heads). ``tokens`` is the final
    ``[B, N, D]`` after the final layer norm and the text projection.
    """

    tokens: torch.Tensor
    queries: List[torch.Tensor]
    keys: List[torch.Tensor]
    values: List[torch.Tensor]
    attn: List[torch.Tensor]
    attn_outputs: List[torch.Tensor]


def dense_attention_block(
        x: torch.Tensor, ln_1: Callable, qkv: Callable,
        out_proj: Callable, mlp_branch: Callable, attn_mask: torch.Tensor,
        heads: int) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
    """One pre-norm transformer block computed by hand.

    ``x + out_proj(attention(qkv(ln_1(x))))``, then ``+ mlp_branch(.)``,
    with ``heads`` heads of scaled dot-product attention and the additive
    ``attn_mask [N, N]``.

    Returns:
        tuple: the block output ``[B, N, W]`` and ``(q, k, v, attention map
        averaged over heads [B, N, N], attention output [B, N, W])``.
    """
    q, k, v = qkv(ln_1(x))
    batch, length, width = q.shape
    head_dim = width // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, length, heads, head_dim).transpose(1, 2)

    logits = split(q) @ split(k).transpose(-1, -2) / math.sqrt(head_dim)
    weights = (logits + attn_mask).softmax(dim=-1)
    out = (weights @ split(v)).transpose(1, 2).reshape(batch, length, width)
    x = x + out_proj(out)
    x = x + mlp_branch(x)
    return x, (q, k, v, weights.mean(dim=1), out)
