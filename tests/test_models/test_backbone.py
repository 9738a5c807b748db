import pytest
import torch
from common import EOT, SOT
from tiny_models import tiny_backbone_cfg

from gadms.models.backbones import read_clip_state_dict, resize_pos_embed
from gadms.registry import MODELS


def _inputs(image_size=(32, 16), batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *image_size, generator=generator)
    text_ids = torch.zeros(batch, 77, dtype=torch.long)
    text_ids[:, 0] = SOT
    text_ids[0, 1:4] = torch.tensor([320, 2308, 530])
    text_ids[0, 4] = EOT
    text_ids[1, 1:7] = torch.tensor([320, 736, 6164, 267, 9920, 256])
    text_ids[1, 7] = EOT
    return images, text_ids


def _build(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MODELS.build(tiny_backbone_cfg(**kwargs)).eval()


def test_token_outputs_match_open_clip_pooled_features():
    backbone = _build()
    images, text_ids = _inputs()
    with torch.no_grad():
        image_tokens = backbone.encode_image(images)
        text_tokens = backbone.encode_text(text_ids)
        expected_image = backbone.clip.encode_image(images)
        expected_text = backbone.clip.encode_text(text_ids)
    # 32 x 16 at patch 8 -> a 4 x 2 grid plus the class token
    assert image_tokens.shape == (2, 1 + 4 * 2, 32)
    assert text_tokens.shape == (2, 77, 32)
    torch.testing.assert_close(image_tokens[:, 0], expected_image)
    pooled = backbone.pool_text(text_tokens, text_ids)
    torch.testing.assert_close(pooled, expected_text)
    torch.testing.assert_close(pooled[1], text_tokens[1, 7])


def test_sentences_stop_at_the_longest_eot_with_the_same_features():
    backbone = _build()
    _, text_ids = _inputs()
    lengths = []
    encode_text = backbone.encode_text

    def spy(ids):
        lengths.append(ids.shape[1])
        return encode_text(ids)

    backbone.encode_text = spy
    with torch.no_grad():
        sentences = backbone.encode_sentences(text_ids)
        expected = backbone.clip.encode_text(text_ids)
    # the longer caption's EOT sits at position 7
    assert lengths == [8]
    torch.testing.assert_close(sentences, expected)


def test_a_bidirectional_text_tower_is_not_cut():
    backbone = _build()
    backbone.clip.attn_mask = None
    _, text_ids = _inputs()
    with torch.no_grad():
        sentences = backbone.encode_sentences(text_ids)
        full = backbone.pool_text(backbone.encode_text(text_ids), text_ids)
        cut = backbone.pool_text(backbone.encode_text(text_ids[:, :8]),
                                 text_ids[:, :8])
    assert not backbone.causal_text
    # without the causal mask the padding reaches the EOT row
    assert not torch.allclose(full, cut)
    torch.testing.assert_close(sentences, full)


def test_openai_state_dict_layout_round_trip(tmp_path):
    source = _build(seed=1)
    state_dict = {k: v.half() if v.is_floating_point() else v
                  for k, v in source.clip.state_dict().items()}
    assert 'visual.conv1.weight' in state_dict  # OpenAI key names
    path = str(tmp_path / 'openai_tiny.pt')
    torch.save(state_dict, path)
    target = _build(seed=2, pretrained=path)
    target.init_weights()
    half_source = _build(seed=3)
    half_source.clip.load_state_dict({k: v.float() for k, v in
                                      state_dict.items()})
    images, text_ids = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(target.encode_image(images),
                                   half_source.encode_image(images))
        torch.testing.assert_close(target.encode_text(text_ids),
                                   half_source.encode_text(text_ids))
    assert all(p.dtype == torch.float32 for p in target.parameters())


def test_open_clip_checkpoint_with_ddp_prefix(tmp_path):
    source = _build(seed=1)
    path = str(tmp_path / 'open_clip.pt')
    torch.save(
        dict(epoch=3, state_dict={
            f'module.{k}': v
            for k, v in source.clip.state_dict().items()
        }), path)
    target = _build(seed=2, pretrained=path)
    target.init_weights()
    images, text_ids = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(target.encode_image(images),
                                   source.encode_image(images))


def test_torchscript_archive(tmp_path):
    source = _build(seed=1)
    images, text_ids = _inputs()
    traced = torch.jit.trace_module(
        source.clip,
        inputs=dict(encode_image=(images, ), encode_text=(text_ids, )),
        check_trace=False)
    path = str(tmp_path / 'jit.pt')
    torch.jit.save(traced, path)
    state_dict = read_clip_state_dict(path)
    assert set(state_dict) - {'attn_mask'} == set(source.clip.state_dict())
    target = _build(seed=2, pretrained=path)
    target.init_weights()
    with torch.no_grad():
        torch.testing.assert_close(target.encode_text(text_ids),
                                   source.encode_text(text_ids))


def test_pos_embed_resize_hand_check():
    # class position 7; a 2 x 2 grid [[0, 1], [2, 3]] with one channel
    pos_embed = torch.tensor([[7.], [0.], [1.], [2.], [3.]])
    resized = resize_pos_embed(pos_embed, (4, 2))
    # bilinear, align_corners=False: rows sample at -0.25, 0.25, 0.75, 1.25
    # (clamped to the edges), columns are unchanged
    expected = torch.tensor([7., 0., 1., 0.5, 1.5, 1.5, 2.5, 2., 3.])
    torch.testing.assert_close(resized[:, 0], expected)


def test_weights_from_another_resolution_are_resized(tmp_path):
    source = _build(seed=1, image_size=(32, 32))  # 4 x 4 grid
    path = str(tmp_path / 'square.pt')
    torch.save(source.clip.state_dict(), path)
    target = _build(seed=2, image_size=(64, 32), pretrained=path)  # 8 x 4
    target.init_weights()
    old = source.clip.visual.positional_embedding.detach()
    new = target.clip.visual.positional_embedding.detach()
    assert new.shape == (1 + 8 * 4, 32)
    torch.testing.assert_close(new[0], old[0])
    torch.testing.assert_close(new, resize_pos_embed(old, (8, 4)))


def test_missing_file_and_bad_keys_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pt'):
        _build(pretrained=str(tmp_path / 'nowhere.pt')).init_weights()
    state_dict = _build(seed=1).clip.state_dict()
    state_dict['token_embedding.weight'] = torch.zeros(10, 32)
    del state_dict['ln_final.bias']
    state_dict['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'bad.pt')
    torch.save(state_dict, path)
    with pytest.raises(ValueError) as info:
        _build(pretrained=path).init_weights()
    message = str(info.value)
    assert 'bad.pt' in message
    assert 'token_embedding.weight: file (10, 32) vs model (49408, 32)' \
        in message
    assert "missing keys: ['ln_final.bias']" in message
    assert "unexpected keys: ['extra.weight']" in message


def test_non_weights_file_is_refused(tmp_path):
    path = tmp_path / 'pickle.pt'
    torch.save({'state_dict': {'a': torch.zeros(1)}, 'fn': print}, path)
    with pytest.raises(ValueError, match='pickle.pt'):
        read_clip_state_dict(str(path))


def test_unknown_architecture():
    with pytest.raises(ValueError, match='unknown open_clip architecture'):
        MODELS.build(dict(type='OpenCLIPBackbone', arch='ViT-Z-99'))
