"""One tools/test.py run over several benchmarks (direct transfer)."""
import json
import os.path as osp

import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config

from gadms.datasets import export_synth_person
from gadms.registry import MODELS

BASE_CONFIG = osp.join(REPO_ROOT,
                       'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
# the SynthPerson test split of the base config, made small
SYNTH = dict(num_identities=dict(train=16, val=4, test=4),
             images_per_identity=4, captions_per_image=2, image_size=(128, 48),
             seed=0)
LAYOUTS = {'CUHKPEDES': 'cuhk-pedes', 'ICFGPEDES': 'icfg-pedes',
           'RSTPReid': 'rstpreid'}
METRIC_NAMES = ('R1', 'R5', 'R10', 'mAP', 'mINP')


TEST_PIPELINE = [
    dict(type='Resize', scale=(32, 96), keep_ratio=False),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]


def _write_config(tmp_path) -> str:
    """The tiny config, tested on SynthPerson's test split and on copies of
    it written in each benchmark's format."""
    datasets = [dict(type='SynthPerson', split='test',
                     pipeline=TEST_PIPELINE, **SYNTH)]
    for kind, layout in LAYOUTS.items():
        root = str(tmp_path / layout)
        export_synth_person(root, layout, splits=['test'], **SYNTH)
        datasets.append(
            dict(type=kind, data_root=root, split='test',
                 pipeline=[dict(type='LoadPersonImage')] + TEST_PIPELINE))
    test_dataloader = dict(
        batch_size=16, num_workers=0, persistent_workers=False,
        dataset=dict(_delete_=True, type='ConcatDataset', datasets=datasets))
    config = tmp_path / 'multi.py'
    config.write_text(f'_base_ = [{BASE_CONFIG!r}]\n'
                      f'test_dataloader = {test_dataloader!r}\n')
    return str(config)


def test_one_run_prints_a_row_per_benchmark_with_equal_metrics(tmp_path):
    checkpoint = str(tmp_path / 'model.pth')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(BASE_CONFIG).model)
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = str(tmp_path / 'metrics.json')
    result = run_tool('tools/test.py', _write_config(tmp_path), checkpoint,
                      '--work-dir', str(tmp_path / 'work'), '--out', out)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(out))
    names = ['SynthPerson', 'CUHK-PEDES', 'ICFG-PEDES', 'RSTPReid']
    assert set(metrics) == {
        f'{prefix}t2i/{m}'
        for prefix in [''] + [f'{n}/' for n in names] for m in METRIC_NAMES
    }
    # the written copies hold SynthPerson's test split pixel for pixel
    for name in names[1:]:
        for m in METRIC_NAMES:
            assert abs(metrics[f'{name}/t2i/{m}'] -
                       metrics[f'SynthPerson/t2i/{m}']) < 1e-6
    log = (result.stdout + result.stderr).splitlines()
    title = next(i for i, line in enumerate(log)
                 if 't2i text-to-image retrieval' in line)
    table = [line for line in log[title:title + 9] if line.startswith('|')]
    assert [row.split('|')[1].strip() for row in table] == [
        'dataset', *names, 'mean'
    ]
    assert all(row.split('|')[2].strip() == 'test' for row in table[1:-1])
    assert all(row.split('|')[3].strip() == '32' for row in table[1:-1])
