import torch
from mmengine.dist import get_rank, get_world_size
from torch import distributed as torch_dist


def gather_with_local_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All-gather a batch from every rank, keeping this rank's gradient.

    Each rank contributes a tensor of the same shape; the result is the
    rank-ordered concatenation ``[world_size * B, ...]``. The other ranks'
    rows are constants; this rank's rows are ``tensor`` itself, so
    gradients flow into the local shard only. With one process (or no
    process group) ``tensor`` is returned unchanged.
    """
    world_size = get_world_size()
    if world_size == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(world_size)]
    torch_dist.all_gather(gathered, tensor.detach().contiguous())
    gathered[get_rank()] = tensor
    return torch.cat(gathered)
