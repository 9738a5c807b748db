import pytest
import torch
import torch.nn.functional as F
from common import EOT, SOT
from tiny_models import tiny_backbone_cfg

from gadms.models.data_preprocessors import CLIP_MEAN, CLIP_STD
from gadms.registry import MODELS
from gadms.structures import TextPersonDataSample


def _batch(num_images=4, captions=(1, 1, 1, 1), seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(num_images):
        inputs.append(
            torch.randint(0, 256, (3, 32, 16), dtype=torch.uint8,
                          generator=generator))
        ids = torch.zeros(captions[i], 77, dtype=torch.long)
        ids[:, 0] = SOT
        ids[:, 1] = 320 + i
        ids[:, 2] = EOT
        samples.append(TextPersonDataSample().set_pid(i // 2).set_text_ids(
            ids))
    return dict(inputs=inputs, data_samples=samples)


def _model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='CLIPSDM', backbone=tiny_backbone_cfg(), **kwargs))


def test_data_preprocessor_normalises_and_concatenates_captions():
    preprocessor = MODELS.build(dict(type='TextPersonDataPreprocessor'))
    batch = _batch(3, captions=(1, 3, 2))
    data = preprocessor(batch)
    images, text_ids = data['inputs']['images'], data['inputs']['text_ids']
    assert images.shape == (3, 3, 32, 16) and images.dtype == torch.float32
    raw = batch['inputs'][1].float()
    # BGR input -> RGB, then (x - mean) / std per RGB channel
    for channel in range(3):
        expected = (raw[2 - channel] - CLIP_MEAN[channel]) / CLIP_STD[channel]
        torch.testing.assert_close(images[1, channel], expected)
    assert text_ids.shape == (6, 77)
    assert text_ids[:, 1].tolist() == [320, 321, 321, 321, 322, 322]
    with pytest.raises(ValueError, match='share one shape'):
        batch['inputs'][0] = torch.zeros(3, 8, 8, dtype=torch.uint8)
        preprocessor(batch)


def test_loss_mode():
    model = _model()
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_sdm'}
    assert losses['loss_sdm'].dim() == 0 and losses['loss_sdm'] > 0
    losses['loss_sdm'].backward()
    assert model.backbone.clip.visual.conv1.weight.grad is not None
    assert model.backbone.clip.token_embedding.weight.grad is not None


def test_loss_needs_one_caption_per_image():
    model = _model()
    data = model.data_preprocessor(_batch(captions=(1, 2, 1, 1)), True)
    with pytest.raises(ValueError, match='one caption per image'):
        model(**data, mode='loss')


def test_id_head_adds_id_loss():
    model = _model(id_head=dict(type='IdentityHead', num_classes=2))
    assert model.id_head.classifier.in_features == 32
    data = model.data_preprocessor(_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_sdm', 'loss_id'}
    # with the classifier zeroed, both CE terms are log(num_classes)
    torch.nn.init.zeros_(model.id_head.classifier.weight)
    torch.nn.init.zeros_(model.id_head.classifier.bias)
    losses = model(**data, mode='loss')
    assert losses['loss_id'].item() == pytest.approx(torch.log(
        torch.tensor(2.)).item())


def test_predict_attaches_normalised_features_per_image():
    model = _model().eval()
    data = model.data_preprocessor(_batch(3, captions=(2, 1, 3)))
    with torch.no_grad():
        samples = model(**data, mode='predict')
        image_feats, text_feats = model(**data, mode='tensor')
    assert image_feats.shape == (3, 32) and text_feats.shape == (6, 32)
    assert [s.text_feats.shape[0] for s in samples] == [2, 1, 3]
    torch.testing.assert_close(samples[2].text_feats,
                               F.normalize(text_feats[3:], dim=-1))
    torch.testing.assert_close(samples[1].image_feat,
                               F.normalize(image_feats[1], dim=-1))
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(**data, mode='nope')


def test_id_head_takes_a_loss_config():
    """The head's loss is a registered config: mmpretrain's cross-entropy
    by default (the mean of the image and the text CE), scaled by its
    loss_weight."""
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='IdentityHead', num_classes=3, in_channels=4,
        loss=dict(type='mmpretrain.CrossEntropyLoss', loss_weight=0.5)))
    image, text = torch.randn(2, 4), torch.randn(2, 4)
    pids = torch.tensor([2, 0])
    logits_image, logits_text = head.classifier(image), head.classifier(text)
    expected = 0.5 * (F.cross_entropy(logits_image, pids) +
                      F.cross_entropy(logits_text, pids)) / 2
    torch.testing.assert_close(head.loss(image, text, pids)['loss_id'],
                               expected)
