"""Collectives for losses computed over the batch of every rank."""
from typing import Tuple

import torch
from mmengine.dist import get_rank, get_world_size
from torch import distributed as torch_dist


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient of this rank's
    rows (an all-reduce, which gloo supports, then this rank's slice)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        gathered = [torch.empty_like(tensor)
                    for _ in range(get_world_size())]
        torch_dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch_dist.all_reduce(grad)
        start = get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather ``[B, ...]`` from every rank into ``[world_size * B,
    ...]`` (rank order), differentiable: this rank's rows receive the sum
    of the gradients that every rank's loss sends them. Every rank must
    pass the same shape. With one process ``tensor`` is returned as is.

    With each rank's loss computed on its own rows against the gathered
    batch, DDP's gradient average then equals the gradient of the mean
    loss over the global batch, for any number of processes.
    """
    if get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather_constant(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather ``[B, ...]`` without gradient (labels, indices)."""
    if get_world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(get_world_size())]
    torch_dist.all_gather(gathered, tensor.detach().contiguous())
    return torch.cat(gathered)


def local_rows(batch_size: int) -> slice:
    """This rank's rows in a tensor gathered by :func:`gather_with_grad`."""
    start = get_rank() * batch_size
    return slice(start, start + batch_size)


def global_min_max(tensor: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Minimum and maximum of ``tensor`` over every rank's values."""
    low, high = tensor.min().detach().clone(), tensor.max().detach().clone()
    if get_world_size() > 1:
        torch_dist.all_reduce(low, op=torch_dist.ReduceOp.MIN)
        torch_dist.all_reduce(high, op=torch_dist.ReduceOp.MAX)
    return low, high
