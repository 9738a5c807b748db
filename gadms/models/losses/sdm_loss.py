import torch
import torch.nn.functional as F
from torch import nn

from gadms.registry import MODELS
from ..utils import gather_constant, gather_with_grad, local_rows


def _matching_kl(logits: torch.Tensor, target: torch.Tensor,
                 eps: float) -> torch.Tensor:
    """Mean over rows of KL(softmax(logits) || target)."""
    pred = logits.softmax(dim=1)
    kl = pred * (logits.log_softmax(dim=1) - torch.log(target + eps))
    return kl.sum(dim=1).mean()


@MODELS.register_module()
class SDMLoss(nn.Module):
    """Similarity distribution matching (IRRA; GA-DMS method.md 5.1).

    With cosine similarities ``C[i, j] = cos(f_i, h_j)`` between image and
    text features, and the identity-label distribution
    ``q[i, j] = [pid_i == pid_j] / sum_k [pid_i == pid_k]``, the loss is

    ``KL(softmax_j(C / tau) || q) + KL(softmax_j(C^T / tau) || q)``,

    each KL averaged over rows, with ``eps`` added to ``q`` before the log.
    The two directions are summed, not averaged.

    Args:
        temperature (float): ``tau``; fixed, 0.02 as in GA-DMS.
        eps (float): Added to the label distribution. Defaults to 1e-8.
        gather (bool): Match this rank's rows against the batch gathered
            from every rank (differentiably). Each rank's loss is the mean
            over its own rows; their mean is the loss of the global batch
            and DDP's gradient average is its gradient, for any number of
            processes (with equal per-rank batches). No effect with one
            process.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self,
                 temperature: float = 0.02,
                 eps: float = 1e-8,
                 gather: bool = True,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.eps = eps
        self.gather = gather
        self.loss_weight = loss_weight

    def forward(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
                pids: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            image_feats (Tensor): ``[B, D]`` global image features.
            text_feats (Tensor): ``[B, D]`` sentence features; row ``i``
                describes image ``i``.
            pids (Tensor): ``[B]`` identities.

        Returns:
            Tensor: scalar loss.
        """
        rows = slice(None)
        all_images, all_texts, all_pids = image_feats, text_feats, pids
        if self.gather:
            all_images = gather_with_grad(image_feats)
            all_texts = gather_with_grad(text_feats)
            all_pids = gather_constant(pids)
            rows = local_rows(len(pids))
        all_images = F.normalize(all_images.float(), dim=-1)
        all_texts = F.normalize(all_texts.float(), dim=-1)
        # this rank's images against every caption and vice versa: [b, B]
        image_to_text = all_images[rows] @ all_texts.t() / self.temperature
        text_to_image = all_texts[rows] @ all_images.t() / self.temperature
        same_id = (all_pids[rows, None] == all_pids[None, :]).float()
        target = same_id / same_id.sum(dim=1, keepdim=True)
        loss = _matching_kl(image_to_text, target, self.eps) + _matching_kl(
            text_to_image, target, self.eps)
        return self.loss_weight * loss
