import copy
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from open_clip import get_model_config
from open_clip.model import CLIP

from gadms.registry import MODELS
from .base import BaseCLIPBackbone
from .clip_weights import load_clip_weights
from .dense_text import DenseTextOutput, dense_attention_block


def _build_clip(arch: Union[str, dict], image_size: Tuple[int, int]) -> CLIP:
    if isinstance(arch, str):
        config = get_model_config(arch)
        if config is None:
            raise ValueError(f'unknown open_clip architecture {arch!r}')
    else:
        config = copy.deepcopy(dict(arch))
    config['vision_cfg'] = dict(config['vision_cfg'], image_size=image_size)
    unsupported = [
        name for name in ('timm_model_name', 'attentional_pool')
        if config['vision_cfg'].get(name)
    ] + [name for name in ('hf_model_name', ) if config['text_cfg'].get(name)]
    if unsupported:
        raise ValueError(f'OpenCLIPBackbone supports plain ViT CLIP models; '
                         f'{arch!r} sets {unsupported}')
    config.pop('custom_text', None)
    return CLIP(**config)


def _dense_block(block: torch.nn.Module, x: torch.Tensor,
                 attn_mask: torch.Tensor, heads: int) -> Tuple:
    """Re-run one open_clip residual block by hand (see
    :func:`dense_attention_block`)."""
    attn = block.attn
    return dense_attention_block(
        x, block.ln_1,
        lambda h: F.linear(h, attn.in_proj_weight,
                           attn.in_proj_bias).chunk(3, dim=-1),
        lambda out: block.ls_1(attn.out_proj(out)),
        lambda h: block.ls_2(block.mlp(block.ln_2(h))), attn_mask, heads)


@MODELS.register_module()
class OpenCLIPBackbone(BaseCLIPBackbone):
    """CLIP image and text towers from open_clip, returning all tokens.

    Args:
        arch (str | dict): An open_clip model name (``'ViT-B-16'``; use the
            ``-quickgelu`` variant for OpenAI weights) or a config dict with
            ``embed_dim``, ``vision_cfg``, ``text_cfg`` (and optionally
            ``quick_gelu``), e.g. a tiny model for tests.
        image_size (tuple[int, int]): Input ``(height, width)``; the patch
            grid follows (384 x 128 at stride 16 gives 24 x 8).
        pretrained (str, optional): Local CLIP weight file (OpenAI JIT
            archive or state dict, open_clip checkpoint, safetensors),
            loaded by :meth:`init_weights`; the image position embedding is
            resized to the grid, keeping the class position.
        pos_embed_interpolation (str): Interpolation used for that resize.
        grad_checkpointing (bool): Recompute the towers' transformer blocks
            in the backward pass instead of storing their activations
            (open_clip's activation checkpointing): less memory for large
            batches, about one more forward in time.
        init_cfg (dict, optional): MMEngine initialisation config.

    Use in configs::

        backbone=dict(type='OpenCLIPBackbone', arch='ViT-B-16-quickgelu',
                      image_size=(384, 128),
                      pretrained='checkpoints/ViT-B-16.pt')
    """

    def __init__(self,
                 arch: Union[str, dict] = 'ViT-B-16-quickgelu',
                 image_size: Tuple[int, int] = (384, 128),
                 pretrained: Optional[str] = None,
                 pos_embed_interpolation: str = 'bilinear',
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.clip = _build_clip(arch, tuple(image_size))
        self.clip.set_grad_checkpointing(grad_checkpointing)
        # gadms losses own their temperature; a trainable but unused
        # logit_scale would also break DDP's gradient reduction
        self.clip.logit_scale.requires_grad_(False)
        self.pretrained = pretrained
        self.pos_embed_interpolation = pos_embed_interpolation

    @property
    def embed_dim(self) -> int:
        """Size of the joint image-text space."""
        return self.clip.text_projection.shape[1]

    @property
    def context_length(self) -> int:
        """Number of text positions."""
        return self.clip.context_length

    @property
    def causal_text(self) -> bool:
        """open_clip builds text towers without the causal mask too."""
        return self.clip.attn_mask is not None

    @property
    def image_size(self) -> Tuple[int, int]:
        """Input ``(height, width)``."""
        return tuple(self.clip.visual.image_size)

    def init_weights(self) -> None:
        """Load ``pretrained`` if given; otherwise keep open_clip's init."""
        super().init_weights()
        if self.pretrained:
            load_clip_weights(self.clip, self.pretrained,
                              self.pos_embed_interpolation)
            print_log(f'Loaded CLIP weights from {self.pretrained}',
                      logger='current')

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Project every image token into the joint space.

        Args:
            images (Tensor): ``[B, 3, H, W]`` normalised images.

        Returns:
            Tensor: ``[B, 1 + h * w, D]``; token 0 is the global ([CLS])
            feature.
        """
        visual = self.clip.visual
        x = visual.transformer(visual._embeds(images))
        return visual.ln_post(x) @ visual.proj

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """Project every text position into the joint space.

        Args:
            text_ids (Tensor): ``[T, L]`` token ids, ``L`` up to the
                context length.

        Returns:
            Tensor: ``[T, L, D]``; the row at the EOT position (the largest
            id) is the sentence feature, see :meth:`pool_text`.
        """
        clip = self.clip
        length = text_ids.shape[1]
        x = clip.token_embedding(text_ids) + clip.positional_embedding[:length]
        mask = clip.attn_mask
        if mask is not None:
            mask = mask[:length, :length]
        x = clip.transformer(x, attn_mask=mask)
        return clip.ln_final(x) @ clip.text_projection

    def encode_text_dense(self,
                          text_ids: torch.Tensor,
                          num_layers: int = 8,
                          heads: int = 1) -> DenseTextOutput:
        """Text forward that exposes the internals of the last layers.

        The first ``L - num_layers`` layers run as usual and without
        autograd; the last ``num_layers`` are re-run by hand (see
        :class:`DenseTextOutput`). When autograd is enabled their input is
        marked as requiring grad, so gradients can be taken with respect to
        the exposed tensors even if the weights are frozen.

        Args:
            text_ids (Tensor): ``[B, N]`` token ids.
            num_layers (int): How many final layers to expose.
            heads (int): Attention heads of the re-run: ``1`` treats the
                whole width as one head scaled by ``1 / sqrt(W)`` (GA-DMS's
                released code and Grad-ECLIP); the model's head count
                reproduces :meth:`encode_text` exactly.
        """
        clip = self.clip
        blocks = clip.transformer.resblocks
        self.check_dense_args(num_layers, len(blocks), clip.transformer.width,
                              heads)
        with torch.no_grad():
            x = clip.token_embedding(text_ids) + clip.positional_embedding
            for block in blocks[:len(blocks) - num_layers]:
                x = block(x, attn_mask=clip.attn_mask)
        return self._dense_tail(
            x, blocks[len(blocks) - num_layers:],
            lambda block, h: _dense_block(block, h, clip.attn_mask, heads),
            lambda h: clip.ln_final(h) @ clip.text_projection)
