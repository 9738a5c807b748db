import copy
from typing import Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from open_clip import get_model_config
from open_clip.model import CLIP

from gadms.registry import MODELS
from .clip_weights import load_clip_weights


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


@MODELS.register_module()
class OpenCLIPBackbone(BaseModule):
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
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.clip = _build_clip(arch, tuple(image_size))
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
            text_ids (Tensor): ``[T, L]`` token ids.

        Returns:
            Tensor: ``[T, L, D]``; the row at the EOT position (the largest
            id) is the sentence feature, see :meth:`pool_text`.
        """
        clip = self.clip
        x = clip.token_embedding(text_ids) + clip.positional_embedding
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        return clip.ln_final(x) @ clip.text_projection

    @staticmethod
    def pool_text(text_tokens: torch.Tensor,
                  text_ids: torch.Tensor) -> torch.Tensor:
        """Pick each caption's EOT row: ``[T, L, D], [T, L] -> [T, D]``."""
        rows = torch.arange(text_ids.shape[0], device=text_ids.device)
        return text_tokens[rows, text_ids.argmax(dim=-1)]
