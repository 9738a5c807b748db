import glob
import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gadms import registry
from gadms.datasets import export_cuhk_pedes_layout
from gadms.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def test_registries_are_children_of_mmengine_roots():
    for name in registry.__all__:
        node = getattr(registry, name)
        assert node.scope == 'gadms'
        assert node.parent is not None and node.parent.scope == 'mmengine'


def test_config_types_resolve_without_imports_in_a_fresh_process():
    code = ('from mmengine.registry import init_default_scope;'
            'init_default_scope("gadms");'
            'from gadms.registry import MODELS, METRICS, TRANSFORMS;'
            'MODELS.get("CLIPSDM"); MODELS.get("SDMLoss");'
            'METRICS.get("TextPersonRetrievalMetric");'
            'TRANSFORMS.get("TokenizeCaption");'
            'assert TRANSFORMS.get("mmpretrain.RandomErasing")')
    subprocess.run([sys.executable, '-c', code], check=True, cwd=REPO_ROOT)


@pytest.fixture(scope='module')
def benchmark_like_root(tmp_path_factory) -> str:
    """SynthPerson written in the layout of every benchmark gadms reads."""
    root = str(tmp_path_factory.mktemp('benchmarks'))
    ann_file = export_cuhk_pedes_layout(
        root,
        num_identities=dict(train=3, val=2, test=2),
        images_per_identity=2)
    records = json.load(open(ann_file))
    icfg = [dict(r, id=r['id'] - 1) for r in records if r['split'] != 'val']
    rstp = [dict(id=r['id'], img_path=r['file_path'], captions=r['captions'],
                 split=r['split']) for r in records]
    webperson = [{r['file_path']: dict(caption1=r['captions'][0],
                                       caption2=r['captions'][1])}
                 for r in records]
    for name, content in (('ICFG-PEDES.json', icfg),
                          ('data_captions.json', rstp),
                          ('annotations.json', webperson)):
        with open(osp.join(root, name), 'w') as f:
            json.dump(content, f)
    shutil.copytree(osp.join(root, 'imgs'), osp.join(root, 'images'))
    return root


@pytest.mark.parametrize('config_path', CONFIGS,
                         ids=[osp.basename(p) for p in CONFIGS])
def test_every_module_of_a_config_builds(config_path, benchmark_like_root):
    cfg = Config.fromfile(config_path)
    assert cfg.default_scope == 'gadms'
    assert DefaultScope.get_current_instance().scope_name == 'gadms'
    model = MODELS.build(cfg.model)
    assert model.backbone.pretrained == cfg.model.backbone.get('pretrained')
    for loader_key in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
        dataset_cfg = cfg[loader_key].dataset.copy()
        if 'data_root' in dataset_cfg:
            dataset_cfg['data_root'] = benchmark_like_root
        for step in dataset_cfg.pipeline:
            TRANSFORMS.build(step)
        if 'num_identities' in dataset_cfg:
            dataset_cfg['num_identities'] = dict(train=2, val=1, test=1)
        dataset = DATASETS.build(dataset_cfg)
        sample = dataset[0]
        image_size = tuple(model.backbone.clip.visual.image_size)
        assert tuple(sample['inputs'].shape[1:]) == image_size
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        METRICS.build(evaluator)
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(hook)
