"""Converters: OpenAI CLIP files and official IRRA / GA-DMS checkpoints."""
import json
import subprocess
import sys

import pytest
import torch
from common import EOT, REPO_ROOT, SOT, run_tool
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from tiny_models import TINY_ARCH

from gadms.registry import MODELS

IMAGE_SIZE = (32, 16)


def _tool(*args: str) -> str:
    result = run_tool(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _model(seed: int, **model):
    torch.manual_seed(seed)
    cfg = dict(type='GADMS',
               backbone=dict(type='OpenCLIPBackbone', arch=TINY_ARCH,
                             image_size=IMAGE_SIZE),
               scorer=dict(type='GradAttnScorer', num_layers=2), **model)
    return MODELS.build(cfg).eval()


def _features(model) -> tuple:
    torch.manual_seed(5)
    images = torch.randn(2, 3, *IMAGE_SIZE)
    text_ids = torch.zeros(2, 77, dtype=torch.long)
    text_ids[:, 0], text_ids[:, 1:6], text_ids[:, 6] = SOT, 320, EOT
    with torch.no_grad():
        return model.extract_feat(dict(images=images, text_ids=text_ids))


@pytest.mark.parametrize('form', ['state_dict', 'jit'])
def test_openai_clip_converter(form, tmp_path):
    source = _model(seed=1)
    src = str(tmp_path / 'openai.pt')
    if form == 'jit':
        traced = torch.jit.trace_module(
            source.backbone.clip,
            inputs=dict(encode_text=(torch.zeros(1, 77, dtype=torch.long), )),
            check_trace=False)
        torch.jit.save(traced, src)
    else:
        torch.save(source.backbone.clip.state_dict(), src)
    dst = str(tmp_path / 'gadms.pth')
    _tool('tools/model_converters/openai_clip_to_gadms.py', src, dst,
          '--arch', json.dumps(TINY_ARCH), '--image-size', *map(
              str, IMAGE_SIZE))
    target = _model(seed=2)
    load_checkpoint(target, dst, strict=False, logger='silent')
    for ours, theirs in zip(_features(target), _features(source)):
        torch.testing.assert_close(ours, theirs)


def _official_layout(state_dict: dict) -> dict:
    """gadms keys renamed the way IRRA's model names them, in fp16."""
    renames = [('backbone.clip.', 'base_model.'),
               ('mtp_head.cross_attn.', 'cross_attn.'),
               ('mtp_head.transformer.', 'cross_modal_transformer.'),
               ('mtp_head.ln_pre_t.', 'ln_pre_t.'),
               ('mtp_head.ln_pre_i.', 'ln_pre_i.'),
               ('mtp_head.ln_post.', 'ln_post.'),
               ('mtp_head.mlm_head.0.', 'mlm_head.dense.'),
               ('mtp_head.mlm_head.2.', 'mlm_head.ln.'),
               ('mtp_head.mlm_head.3.', 'mlm_head.fc.'),
               ('id_head.classifier.', 'classifier.')]
    official = {}
    for key, value in state_dict.items():
        new = next(new + key[len(old):] for old, new in renames
                   if key.startswith(old))
        official[new] = value.half() if value.is_floating_point() else value
    return official


def test_official_checkpoint_converter(tmp_path):
    source = _model(seed=3, id_head=dict(type='IdentityHead',
                                         num_classes=7))
    official = _official_layout(source.state_dict())
    official['module_only_in_irra.weight'] = torch.zeros(2)
    src = str(tmp_path / 'best.pth')
    torch.save(dict(model={f'module.{k}': v for k, v in official.items()},
                    epoch=3), src)
    dst = str(tmp_path / 'gadms.pth')
    out = _tool('tools/model_converters/irra_to_gadms.py', src, dst)
    assert 'unmatched key left out: module_only_in_irra.weight' in out
    target = _model(seed=4, id_head=dict(type='IdentityHead', num_classes=7))
    load_checkpoint(target, dst, strict=True, logger='silent')
    # the source's weights as the fp16 file holds them
    rounded = _model(seed=3, id_head=dict(type='IdentityHead',
                                          num_classes=7))
    rounded.load_state_dict({k: v.half().float() if v.is_floating_point()
                             else v for k, v in source.state_dict().items()})
    for ours, theirs in zip(_features(target), _features(rounded)):
        torch.testing.assert_close(ours, theirs)
    for key, value in rounded.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, msg=key)


def test_untrusted_official_checkpoint_needs_the_flag(tmp_path):
    src = str(tmp_path / 'pickled.pth')
    torch.save(dict(model={}, args=Config(dict(a=1))), src)
    result = run_tool('tools/model_converters/irra_to_gadms.py', src,
                      str(tmp_path / 'out.pth'))
    assert result.returncode != 0 and '--trust-checkpoint' in result.stderr


# Run a converter in a child whose torch.save writes half an archive and
# fails (a full disk, a kill): the destination must keep its old content.
TORN_CONVERSION = '''
import runpy, sys, torch

def torn_save(obj, target):
    with open(target, 'wb') as f:
        f.write(b'PK\\\\x03\\\\x04 half an archive')
    raise OSError('disk full')

torch.save = torn_save
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def test_converters_never_leave_a_torn_destination(tmp_path):
    source = _model(seed=1)
    openai = str(tmp_path / 'openai.pt')
    torch.save(source.backbone.clip.state_dict(), openai)
    official = str(tmp_path / 'best.pth')
    torch.save(dict(model=_official_layout(source.state_dict())), official)
    dst = tmp_path / 'gadms.pth'
    commands = [
        ['tools/model_converters/openai_clip_to_gadms.py', openai, str(dst),
         '--arch', json.dumps(TINY_ARCH), '--image-size',
         *map(str, IMAGE_SIZE)],
        ['tools/model_converters/irra_to_gadms.py', official, str(dst)],
    ]
    for command in commands:
        dst.write_bytes(b'the previous conversion')
        result = subprocess.run([sys.executable, '-c', TORN_CONVERSION,
                                 *command], cwd=REPO_ROOT,
                                capture_output=True, text=True)
        assert result.returncode != 0 and 'disk full' in result.stderr
        assert dst.read_bytes() == b'the previous conversion', command[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            'best.pth', 'gadms.pth', 'openai.pt']
