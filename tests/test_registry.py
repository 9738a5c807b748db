import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from common import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gadms import registry
from gadms.datasets import export_synth_person
from gadms.registry import DATASETS, HOOKS, METRICS, MODELS

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


# dataset type -> the SynthPerson layout written for it
LAYOUT_OF = {
    'CUHKPEDES': 'cuhk-pedes',
    'ICFGPEDES': 'icfg-pedes',
    'RSTPReid': 'rstpreid',
    'WebPerson': 'webperson-parquet',
}


@pytest.fixture(scope='module')
def benchmark_roots(tmp_path_factory) -> dict:
    """SynthPerson written in the layout of every benchmark gadms reads."""
    root = tmp_path_factory.mktemp('benchmarks')
    for layout in set(LAYOUT_OF.values()):
        export_synth_person(
            str(root / layout), layout,
            num_identities=dict(train=3, val=2, test=2),
            images_per_identity=2)
    return {kind: str(root / layout) for kind, layout in LAYOUT_OF.items()}


def _point_to(dataset_cfg, roots: dict):
    """The dataset config with each data_root replaced by the fixture's."""
    dataset_cfg = dataset_cfg.copy()
    if dataset_cfg.type == 'ConcatDataset':
        dataset_cfg.datasets = [
            _point_to(d, roots) for d in dataset_cfg.datasets
        ]
    elif 'data_root' in dataset_cfg:
        dataset_cfg.data_root = roots[dataset_cfg.type]
    return dataset_cfg


@pytest.mark.parametrize('config_path', CONFIGS,
                         ids=[osp.basename(p) for p in CONFIGS])
def test_every_module_of_a_config_builds(config_path, benchmark_roots):
    cfg = Config.fromfile(config_path)
    assert cfg.default_scope == 'gadms'
    assert DefaultScope.get_current_instance().scope_name == 'gadms'
    # on the meta device: every constructor runs, no weights are drawn (a
    # ViT-B/16 takes 2.4 s to initialise; tools/analysis_tools/get_flops.py
    # builds it with weights in tests/test_tools/test_get_flops.py)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.pretrained == cfg.model.backbone.get('pretrained')
    for loader_key in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
        dataset_cfg = _point_to(cfg[loader_key].dataset, benchmark_roots)
        if 'num_identities' in dataset_cfg:
            dataset_cfg['num_identities'] = dict(train=2, val=1, test=1)
        if dataset_cfg.get('subset'):  # a few images of the small corpus
            dataset_cfg['subset'] = dict(dataset_cfg['subset'], num_images=2)
        dataset = DATASETS.build(dataset_cfg)
        sample = dataset[0]
        image_size = model.backbone.image_size
        assert tuple(sample['inputs'].shape[1:]) == image_size
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        METRICS.build(evaluator)
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(hook)
