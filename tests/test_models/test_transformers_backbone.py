"""The transformers CLIP backbone gives open_clip's outputs for the same
weights (converted here into the Hugging Face layout)."""
import torch
from common import EOT, SOT
from tiny_models import TINY_ARCH
from transformers import CLIPConfig, CLIPModel

from gadms.models.backbones import OpenCLIPBackbone, TransformersCLIPBackbone
from gadms.registry import MODELS

SIZE = (32, 32)  # square: the HF folder stores the same position rows


def _hf_config() -> CLIPConfig:
    vision, text = TINY_ARCH['vision_cfg'], TINY_ARCH['text_cfg']
    return CLIPConfig(
        projection_dim=TINY_ARCH['embed_dim'],
        text_config=dict(vocab_size=text['vocab_size'],
                         hidden_size=text['width'],
                         intermediate_size=4 * text['width'],
                         num_hidden_layers=text['layers'],
                         num_attention_heads=text['heads'],
                         max_position_embeddings=text['context_length'],
                         hidden_act='gelu'),
        vision_config=dict(hidden_size=vision['width'],
                           intermediate_size=4 * vision['width'],
                           num_hidden_layers=vision['layers'],
                           num_attention_heads=vision['width'] //
                           vision['head_width'],
                           image_size=SIZE[0],
                           patch_size=vision['patch_size'],
                           hidden_act='gelu'))


def _to_hf(open_clip_state: dict) -> dict:
    """open_clip CLIP keys -> Hugging Face CLIPModel keys."""
    hf = {}
    towers = (('visual.transformer.', 'vision_model.encoder.layers.'),
              ('transformer.', 'text_model.encoder.layers.'))
    renames = {
        'visual.conv1.weight':
        'vision_model.embeddings.patch_embedding.weight',
        'visual.class_embedding': 'vision_model.embeddings.class_embedding',
        'visual.positional_embedding':
        'vision_model.embeddings.position_embedding.weight',
        'token_embedding.weight':
        'text_model.embeddings.token_embedding.weight',
        'positional_embedding':
        'text_model.embeddings.position_embedding.weight',
        'logit_scale': 'logit_scale',
    }
    norms = {'visual.ln_pre': 'vision_model.pre_layrnorm',
             'visual.ln_post': 'vision_model.post_layernorm',
             'ln_final': 'text_model.final_layer_norm'}
    parts = {'ln_1': 'layer_norm1', 'ln_2': 'layer_norm2',
             'attn.out_proj': 'self_attn.out_proj', 'mlp.c_fc': 'mlp.fc1',
             'mlp.c_proj': 'mlp.fc2'}
    for key, value in open_clip_state.items():
        if key in renames:
            hf[renames[key]] = value
        elif key in ('visual.proj', 'text_projection'):
            name = 'visual_projection' if key == 'visual.proj' else key
            hf[f'{name}.weight'] = value.t()
        elif key.rsplit('.', 1)[0] in norms:
            stem, leaf = key.rsplit('.', 1)
            hf[f'{norms[stem]}.{leaf}'] = value
        else:
            prefix, new_prefix = next((p, n) for p, n in towers
                                      if key.startswith(p + 'resblocks.'))
            index, rest = key[len(prefix + 'resblocks.'):].split('.', 1)
            base = f'{new_prefix}{index}.'
            if rest.startswith('attn.in_proj_'):
                leaf = rest[len('attn.in_proj_'):]
                for name, chunk in zip('qkv', value.chunk(3)):
                    hf[f'{base}self_attn.{name}_proj.{leaf}'] = chunk
            else:
                stem, leaf = rest.rsplit('.', 1)
                hf[f'{base}{parts[stem]}.{leaf}'] = value
    return hf


def _pair(tmp_path):
    torch.manual_seed(0)
    source = OpenCLIPBackbone(arch=TINY_ARCH, image_size=SIZE)
    model = CLIPModel(_hf_config())
    missing, unexpected = model.load_state_dict(
        _to_hf(source.clip.state_dict()), strict=False)
    assert not unexpected and not [k for k in missing if 'position_ids'
                                   not in k]
    folder = str(tmp_path / 'hf-clip')
    model.save_pretrained(folder)
    target = TransformersCLIPBackbone(arch=folder, pretrained=folder,
                                      image_size=SIZE)
    target.init_weights()
    return source.eval(), target.eval()


def test_same_tokens_and_dense_pass_as_open_clip(tmp_path):
    source, target = _pair(tmp_path)
    torch.manual_seed(1)
    images = torch.randn(2, 3, *SIZE)
    text_ids = torch.zeros(2, 77, dtype=torch.long)
    text_ids[:, 0], text_ids[0, 1:4], text_ids[0, 4] = SOT, 320, EOT
    text_ids[1, 1:9], text_ids[1, 9] = 1000, EOT
    assert target.embed_dim == source.embed_dim
    assert target.context_length == source.context_length
    with torch.no_grad():
        torch.testing.assert_close(target.encode_image(images),
                                   source.encode_image(images))
        torch.testing.assert_close(target.encode_text(text_ids),
                                   source.encode_text(text_ids))
        torch.testing.assert_close(target.encode_sentences(text_ids),
                                   source.clip.encode_text(text_ids))
    for heads in (1, 2):
        ours = target.encode_text_dense(text_ids, num_layers=1, heads=heads)
        theirs = source.encode_text_dense(text_ids, num_layers=1,
                                          heads=heads)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(torch.stack(list(a)) if isinstance(
                a, list) else a, torch.stack(list(b)) if isinstance(
                    b, list) else b)


def test_a_config_swaps_the_backbone_for_gadms(tmp_path):
    _, target = _pair(tmp_path)
    folder = target.pretrained
    model = MODELS.build(dict(
        type='GADMS',
        backbone=dict(type='TransformersCLIPBackbone', arch=folder,
                      image_size=(32, 16)),
        scorer=dict(type='GradAttnScorer', num_layers=2)))
    text_ids = torch.zeros(4, 77, dtype=torch.long)
    text_ids[:, 0], text_ids[:, 1:5], text_ids[:, 5] = SOT, 320, EOT
    scores = model.scorer(model.backbone, text_ids,
                          model.backbone.encode_image(
                              torch.randn(4, 3, 32, 16)))
    assert scores.shape == (4, 77) and 0 <= scores.min() <= scores.max() <= 1
    assert model.backbone.image_pos_embed.shape[0] == 1 + 4 * 2
