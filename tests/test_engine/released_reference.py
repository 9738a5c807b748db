"""The released GA-DMS code's training semantics, re-implemented for the
equivalence test from method.md alone (never from gadms's modules, apart
from the network whose layers it runs and the keyed random draws).

Every constant here is the released code's (method.md 3-5 and 6.1): the
GASS formula with the EOT attention divided by the sum of the raw gradient
scores, min-max over each GPU's batch, masks of 0.2/0.3 x sigmoid(20 ...)
with BERT 80/10/10 in both views and a forced first-word mask, SDM at
tau 0.02 over the gathered batch with gradients through the local rows,
MTP at beta 0.3 as a mean over the GPU's masked tokens, WebPerson pids as
webreid.py numbers them (one per image, 0, 2, 4, ...), one score bank per
GPU.
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F

MASK_ID = 49405  # method.md 4.2: [MASK], and the first ineligible id
TAU = 0.02
BETA = 0.3
NOISE_ALPHA, INFO_ALPHA, LAM, NOISE_GAMMA, INFO_GAMMA = 0.2, 0.3, 20, 0.9, 0.1
SCORE_INIT = 0.85
SCALES = (1, 2)


def webreid_pids(num_images: int, captions_per_image: int = 2) -> list:
    """The pid of each training sample as the released
    ``WebREID._get_dataset`` loop assigns it (method.md 7.1): the pid is
    taken once per image, before the caption loop, from a counter that
    then advances once per caption; samples are in (image, caption) order.
    """
    pids, pid_count = [], 0
    for _ in range(num_images):
        pid = pid_count
        for _ in range(captions_per_image):
            pids.append(pid)
            pid_count += 1
    return pids


def multi_scale_pool(x: torch.Tensor) -> torch.Tensor:
    """method.md 3.2 step 4 for ``x`` of ``[B, N, D]``: per scale c, means
    of consecutive blocks of c positions (a leftover tail is one more
    block), linearly resized back to N (align_corners=False); the mean over
    the scales."""
    length = x.shape[1]
    resized = []
    for c in SCALES:
        full = length // c
        blocks = x[:, :full * c].reshape(x.shape[0], full, c, -1).mean(2)
        if length % c:
            blocks = torch.cat([blocks, x[:, full * c:].mean(1, True)], 1)
        resized.append(F.interpolate(blocks.transpose(1, 2), size=length,
                                     mode='linear', align_corners=False
                                     ).transpose(1, 2))
    return torch.stack(resized).mean(0)


def released_gass(clip, text_ids: torch.Tensor, image_feats: torch.Tensor,
                  num_layers: int) -> torch.Tensor:
    """method.md 3.2 steps 1-9 on an open_clip ``CLIP`` (batch-first text
    transformer): ``[B, N]`` scores, min-max over the whole batch."""
    blocks = clip.transformer.resblocks
    batch, length = text_ids.shape
    rows = torch.arange(batch)
    eos = text_ids.argmax(dim=1)
    with torch.no_grad():
        h = clip.token_embedding(text_ids) + clip.positional_embedding
        for block in blocks[:len(blocks) - num_layers]:
            h = block(h, attn_mask=clip.attn_mask)
    h = h.detach().requires_grad_()
    causal = torch.full((length, length), float('-inf')).triu(1)
    layers = []
    for block in blocks[len(blocks) - num_layers:]:
        attn = block.attn
        q, k, v = F.linear(block.ln_1(h), attn.in_proj_weight,
                           attn.in_proj_bias).chunk(3, dim=-1)
        width = q.shape[-1]
        a = torch.softmax(q @ k.transpose(1, 2) / width ** 0.5 + causal, -1)
        o = a @ v  # the attention output before out_proj: differentiated
        h = h + block.ls_1(attn.out_proj(o))
        h = h + block.ls_2(block.mlp(block.ln_2(h)))
        layers.append((q, k, v, a, o))
    text = F.normalize(clip.ln_final(h)[rows, eos] @ clip.text_projection,
                       dim=-1)
    similarity = (F.normalize(image_feats, dim=-1) * text).sum()
    grads = torch.autograd.grad(similarity, [layer[4] for layer in layers])
    positions = torch.arange(length)[None, :]
    valid = ((positions > 0) & (positions < eos[:, None])).float()
    total = torch.zeros(batch, length)
    for (q, k, v, a, _), g in zip(layers, grads):
        pooled_q, pooled_k = multi_scale_pool(q), multi_scale_pool(k)
        cos = F.cosine_similarity(pooled_q[rows, eos][:, None], pooled_k,
                                  dim=-1)
        low = cos.min(1, keepdim=True)[0]
        high = cos.max(1, keepdim=True)[0]
        weight = (cos - low) / (high - low + 1e-8)
        raw = weight * (g[rows, eos][:, None] * v).sum(-1)  # R, [B, N]
        eos_attn = a[rows, eos]
        total = total + (valid * raw) * (valid * eos_attn) / (
            raw.sum(1, keepdim=True) + 1e-8)
    scores = valid * total.relu()
    low, high = scores.min(), scores.max()
    if high == low:
        return torch.zeros_like(scores).detach()
    return ((scores - low) / (high - low)).detach()


def masked_view(ids: torch.Tensor, probs: torch.Tensor, draws: list
                ) -> tuple:
    """method.md 4.2: eligible 0 < id < 49405; selected if u < p; BERT
    80/10/10; none selected -> position 1 becomes [MASK] (both views)."""
    eligible = (ids > 0) & (ids < MASK_ID)
    selected = eligible & (draws[0] < probs)
    none = ~selected.any(dim=1)
    selected[none, 1] = True
    to_mask = selected & (draws[1] < 0.8)
    to_mask[none, 1] = True
    to_random = selected & ~to_mask & (draws[1] < 0.9)
    random_ids = 1 + (draws[2] * (MASK_ID - 1)).long()
    view = ids.clone()
    view[to_random] = random_ids[to_random]
    view[to_mask] = MASK_ID
    labels = torch.where(selected, ids, torch.zeros_like(ids))
    return view, labels


def noise_probs(scores: torch.Tensor) -> torch.Tensor:
    return NOISE_ALPHA * torch.sigmoid(LAM * ((1 - scores) - NOISE_GAMMA))


def info_probs(scores: torch.Tensor) -> torch.Tensor:
    return INFO_ALPHA * torch.sigmoid(LAM * (scores - INFO_GAMMA))


def released_sdm(image_feats: torch.Tensor, text_feats: torch.Tensor,
                 pids: torch.Tensor, world: int) -> torch.Tensor:
    """method.md 5.1 under DDP: gather every rank's features, put the live
    local rows back, SDM (sum of both directions) over the whole batch."""
    rank = dist.get_rank()

    def gather(tensor):
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.detach().contiguous())
        parts[rank] = tensor
        return torch.cat(parts)

    images = F.normalize(gather(image_feats), dim=-1)
    texts = F.normalize(gather(text_feats), dim=-1)
    all_pids = gather(pids)
    labels = (all_pids[:, None] == all_pids[None, :]).float()
    labels = labels / labels.sum(dim=1, keepdim=True)
    loss = 0
    for sims in (images @ texts.t() / TAU, texts @ images.t() / TAU):
        prob = F.softmax(sims, dim=1)
        loss = loss + (prob * (F.log_softmax(sims, dim=1) -
                               torch.log(labels + 1e-8))).sum(1).mean()
    return loss
