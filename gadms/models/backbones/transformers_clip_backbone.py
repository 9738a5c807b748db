import os.path as osp
from typing import Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import nn

from gadms.registry import MODELS
from .base import BaseCLIPBackbone
from .clip_weights import resize_pos_embed
from .dense_text import DenseTextOutput, dense_attention_block


def _clip_config(arch: Union[str, dict]):
    """A ``transformers.CLIPConfig`` (transformers is imported here, on
    first use: it is an optional backend and slow to import)."""
    from transformers import CLIPConfig
    if isinstance(arch, str):
        if not osp.isfile(osp.join(arch, 'config.json')):
            raise FileNotFoundError(f'{arch} is not a Hugging Face CLIP '
                                    'folder (no config.json)')
        return CLIPConfig.from_pretrained(arch, local_files_only=True)
    return CLIPConfig(**arch)


@MODELS.register_module()
class TransformersCLIPBackbone(BaseCLIPBackbone):
    """CLIP towers from ``transformers``, with the output contract of
    :class:`BaseCLIPBackbone` (as :class:`OpenCLIPBackbone`), so a config
    can swap one for the other.

    ``encode_image`` returns every projected image token (token 0 global),
    ``encode_text`` every projected text position (EOT = the sentence),
    ``encode_text_dense`` the internals the gradient-attention scorer needs.
    The image position embedding is resized to the input grid (the class
    position kept), so inputs may be non-square such as 384 x 128.

    Args:
        arch (str | dict): A local Hugging Face CLIP folder (its
            ``config.json``) or ``CLIPConfig`` keyword arguments.
        image_size (tuple[int, int]): Input ``(height, width)``.
        pretrained (str, optional): Local Hugging Face CLIP folder whose
            weights :meth:`init_weights` loads (``from_pretrained``, no
            download).
        pos_embed_interpolation (str): Interpolation of the resize.
        init_cfg (dict, optional): MMEngine initialisation config.

    Use in configs::

        backbone=dict(type='TransformersCLIPBackbone',
                      arch='checkpoints/clip-vit-base-patch16',
                      pretrained='checkpoints/clip-vit-base-patch16',
                      image_size=(384, 128))
    """

    def __init__(self,
                 arch: Union[str, dict],
                 image_size: Tuple[int, int] = (384, 128),
                 pretrained: Optional[str] = None,
                 pos_embed_interpolation: str = 'bilinear',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import CLIPModel
        self.clip = CLIPModel(_clip_config(arch))
        self.clip.logit_scale.requires_grad_(False)  # unused, as in open_clip
        self.image_size = tuple(image_size)
        self.pretrained = pretrained
        self.pos_embed_interpolation = pos_embed_interpolation
        patch = self.clip.config.vision_config.patch_size
        self.grid_size = (self.image_size[0] // patch,
                          self.image_size[1] // patch)
        embeddings = self.clip.vision_model.embeddings
        self.image_pos_embed = nn.Parameter(
            self._resize(embeddings.position_embedding.weight.detach()))
        # replaced by image_pos_embed
        del embeddings.position_embedding

    def _resize(self, pos_embed: torch.Tensor) -> torch.Tensor:
        if pos_embed.shape[0] == 1 + self.grid_size[0] * self.grid_size[1]:
            return pos_embed.clone()
        return resize_pos_embed(pos_embed, self.grid_size,
                                mode=self.pos_embed_interpolation)

    @property
    def embed_dim(self) -> int:
        """Size of the joint image-text space."""
        return self.clip.config.projection_dim

    @property
    def context_length(self) -> int:
        """Number of text positions."""
        return self.clip.config.text_config.max_position_embeddings

    def init_weights(self) -> None:
        """Load ``pretrained`` (a local Hugging Face folder) if given."""
        super().init_weights()
        if not self.pretrained:
            return
        source = type(self.clip).from_pretrained(self.pretrained,
                                                 local_files_only=True)
        state_dict = source.state_dict()
        pos_key = 'vision_model.embeddings.position_embedding.weight'
        self.image_pos_embed.data.copy_(self._resize(state_dict.pop(pos_key)))
        missing, unexpected = self.clip.load_state_dict(state_dict,
                                                        strict=False)
        if missing or unexpected:
            raise ValueError(f'{self.pretrained}: missing keys {missing}, '
                             f'unexpected keys {unexpected}')
        print_log(f'Loaded CLIP weights from {self.pretrained}',
                  logger='current')

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> every projected token ``[B, 1 + h * w, D]``.
        """
        vision = self.clip.vision_model
        embeddings = vision.embeddings
        patches = embeddings.patch_embedding(
            images.to(embeddings.patch_embedding.weight.dtype))
        patches = patches.flatten(2).transpose(1, 2)
        cls = embeddings.class_embedding.expand(patches.shape[0], 1, -1)
        x = torch.cat([cls.to(patches.dtype), patches], dim=1)
        x = vision.pre_layrnorm(x + self.image_pos_embed)
        x = vision.encoder(inputs_embeds=x).last_hidden_state
        return self.clip.visual_projection(vision.post_layernorm(x))

    def encode_text(self, text_ids: torch.Tensor) -> torch.Tensor:
        """``[T, L]`` ids -> every projected position ``[T, L, D]``."""
        hidden = self.clip.text_model(input_ids=text_ids).last_hidden_state
        return self.clip.text_projection(hidden)

    def encode_text_dense(self,
                          text_ids: torch.Tensor,
                          num_layers: int = 8,
                          heads: int = 1) -> DenseTextOutput:
        """As :meth:`OpenCLIPBackbone.encode_text_dense`."""
        text = self.clip.text_model
        layers = text.encoder.layers
        self.check_dense_args(num_layers, len(layers),
                              self.clip.config.text_config.hidden_size, heads)
        length = text_ids.shape[1]
        causal = torch.full((length, length), float('-inf'),
                            device=text_ids.device).triu(1)
        model_heads = self.clip.config.text_config.num_attention_heads
        with torch.no_grad():
            x = text.embeddings(input_ids=text_ids)
            for layer in layers[:len(layers) - num_layers]:
                x, _ = self._block(layer, x, causal, model_heads)
        return self._dense_tail(
            x, layers[len(layers) - num_layers:],
            lambda layer, h: self._block(layer, h, causal, heads),
            lambda h: self.clip.text_projection(text.final_layer_norm(h)))

    @staticmethod
    def _block(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor,
               heads: int) -> Tuple:
        attn = layer.self_attn
        return dense_attention_block(
            x, layer.layer_norm1,
            lambda h: (attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)),
            attn.out_proj, lambda h: layer.mlp(layer.layer_norm2(h)), mask,
            heads)
