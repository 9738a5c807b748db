"""One-shot performance check of the real recipe on one GPU.

    .venv/bin/python benchmarks/gpu_check.py --out gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --tiny      # CPU smoke run

Full mode (one GPU; about 4 minutes on an H100 including start-up): ViT-B/16
at 384 x 128 with bf16 autocast and batch 64 per step, random weights.

- Training step of CLIP-SDM and of GA-DMS (the paper config: GASS over 8
  layers, dual mask, MTP): the first step (CUDA context, cuDNN/cuBLAS
  heuristics, allocator warm-up) separately, then the median of the next
  steps, images per second and peak GPU memory, and the GA-DMS / CLIP-SDM
  ratios.
- Data loading of the real training pipeline (``LoadPersonImage``, PIL
  resize, flip, pad-crop, erasing, tokenising, packing) with 8 workers,
  from JPEG files in the CUHK-PEDES layout and from a WebPerson parquet
  shard, both generated here from SynthPerson: images per second, and how
  many times faster than the GA-DMS step consumes images.

``--tiny`` runs the same code with the tiny CLIP on the CPU, a few steps
and no workers (a test runs it, so the script cannot rot). Prints one
table and writes the figures as JSON.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time

import cv2
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from terminaltables import AsciiTable
from torch.utils.data import DataLoader

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from benchmarks.train_step import build, make_batch  # noqa: E402
from gadms.cli import register_all_modules  # noqa: E402
from gadms.datasets import SynthPerson, export_synth_person  # noqa: E402
from gadms.models.score_bank import TokenScoreBank  # noqa: E402
from gadms.registry import DATASETS  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SIZES = dict(
    full=dict(models=('configs/_base_/models/clip-sdm_vitb16.py',
                      'configs/_base_/models/gadms_vitb16.py'),
              batch=64, steps=10, workers=8, images=2048, loader_batches=24,
              device='cuda', bf16=True),
    tiny=dict(models=('configs/_base_/models/clip-sdm_tiny.py',
                      'configs/_base_/models/gadms_tiny.py'),
              batch=4, steps=2, workers=0, images=24, loader_batches=3,
              device='cpu', bf16=False))
DATA_CONFIG = 'configs/_base_/datasets/cuhk_pedes.py'


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def step_figures(config: str, sizes: dict) -> dict:
    """First-step and median step time, images/s and peak memory of one
    model's training step (forward, backward, Adam)."""
    device = sizes['device']
    model = build(config, device)
    if hasattr(model, 'scorer'):
        model.score_bank = TokenScoreBank(sizes['batch'])
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5,
        eps=1e-3)
    batch = make_batch(sizes['batch'], model.backbone.image_size, 30)
    data = model.data_preprocessor(batch, True)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(sizes['steps'] + 1):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16,
                            enabled=sizes['bf16']):
            losses = model(**data, mode='loss')
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        _sync(device)
        times.append(time.perf_counter() - start)
    step = sorted(times[1:])[len(times[1:]) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**30 \
        if device == 'cuda' else None
    del model, optimizer, data
    if device == 'cuda':
        torch.cuda.empty_cache()
    return dict(first_step_s=times[0], step_s=step,
                images_per_s=sizes['batch'] / step, peak_gib=peak)


def write_jpeg_layout(root: str, num_images: int) -> str:
    """About ``num_images`` SynthPerson images (384 x 128) as JPEG files in
    the CUHK-PEDES layout, all in the train split."""
    identities = max(1, num_images // 4)
    synth = SynthPerson(split='train', num_identities=dict(
        train=identities, val=1, test=1), images_per_identity=4,
        image_size=(384, 128))
    os.makedirs(osp.join(root, 'imgs'), exist_ok=True)
    records = []
    for index in range(0, len(synth), 2):  # two captions per image
        info = synth.get_data_info(index)
        name = f'{index // 2:06d}.jpg'
        cv2.imwrite(osp.join(root, 'imgs', name), info['img'])
        records.append(dict(split='train', file_path=name,
                            id=info['pid'] + 1,
                            captions=[info['captions'][0]] * 2))
    with open(osp.join(root, 'reid_raw.json'), 'w') as f:
        json.dump(records, f)
    return root


def loader_figures(dataset_cfg: dict, sizes: dict) -> float:
    """Images per second of the training pipeline through a DataLoader
    (after the first batch, which starts the workers)."""
    dataset = DATASETS.build(dataset_cfg)
    loader = DataLoader(dataset, batch_size=sizes['batch'], shuffle=True,
                        num_workers=sizes['workers'],
                        collate_fn=pseudo_collate, drop_last=True,
                        persistent_workers=False)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    count = 0
    for _ in range(sizes['loader_batches']):
        try:
            count += len(next(batches)['inputs'])
        except StopIteration:
            batches = iter(loader)
    return count / (time.perf_counter() - start)


def run(sizes: dict, work_dir: str) -> dict:
    """Every figure of the check, as a dict."""
    register_all_modules()
    baseline_cfg, gadms_cfg = (osp.join(REPO_ROOT, config)
                               for config in sizes['models'])
    figures = dict(device=(torch.cuda.get_device_name()
                           if sizes['device'] == 'cuda' else 'cpu'),
                   batch=sizes['batch'], bf16=sizes['bf16'])
    figures['clip_sdm'] = step_figures(baseline_cfg, sizes)
    figures['gadms'] = step_figures(gadms_cfg, sizes)
    figures['step_ratio'] = figures['gadms']['step_s'] / \
        figures['clip_sdm']['step_s']
    if sizes['device'] == 'cuda':
        figures['memory_ratio'] = figures['gadms']['peak_gib'] / \
            figures['clip_sdm']['peak_gib']
    train_pipeline = Config.fromfile(osp.join(
        REPO_ROOT, DATA_CONFIG)).train_pipeline
    jpeg_root = write_jpeg_layout(osp.join(work_dir, 'jpeg'),
                                  sizes['images'])
    parquet_root = osp.join(work_dir, 'parquet')
    export_synth_person(
        parquet_root, 'webperson-parquet',
        num_identities=dict(train=max(1, sizes['images'] // 4), val=1,
                            test=1),
        images_per_identity=4, image_size=(384, 128),
        rows_per_shard=sizes['images'])
    consumed = figures['gadms']['images_per_s']
    for name, dataset_cfg in (
            ('jpeg', dict(type='CUHKPEDES', data_root=jpeg_root,
                          pipeline=train_pipeline)),
            ('parquet', dict(type='WebPerson', data_root=parquet_root,
                             ann_file='data', pipeline=train_pipeline))):
        speed = loader_figures(dataset_cfg, sizes)
        figures[f'loader_{name}'] = dict(
            images_per_s=speed, times_gadms_step=speed / consumed)
    return figures


def table(figures: dict) -> str:
    def gib(value):
        return '-' if value is None else f'{value:.2f}'

    rows = [['', 'first step s', 'step s', 'images/s', 'peak GiB']]
    for name, key in (('CLIP-SDM', 'clip_sdm'), ('GA-DMS', 'gadms')):
        f = figures[key]
        rows.append([name, f'{f["first_step_s"]:.2f}', f'{f["step_s"]:.3f}',
                     f'{f["images_per_s"]:.0f}', gib(f['peak_gib'])])
    memory = figures.get('memory_ratio')
    rows.append(['GA-DMS / CLIP-SDM', '', f'{figures["step_ratio"]:.2f}x',
                 '', '-' if memory is None else f'{memory:.2f}x'])
    for name in ('jpeg', 'parquet'):
        f = figures[f'loader_{name}']
        rows.append([f'loader ({name})', '', '',
                     f'{f["images_per_s"]:.0f}',
                     f'{f["times_gadms_step"]:.1f}x GA-DMS'])
    title = (f'{figures["device"]}, batch {figures["batch"]}, '
             f'bf16={figures["bf16"]}')
    return AsciiTable(rows, title=title).table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tiny', action='store_true',
                        help='tiny CLIP on the CPU (a smoke run)')
    parser.add_argument('--out', default='gpu_check.json',
                        help='write the figures here (JSON)')
    args = parser.parse_args()
    sizes = SIZES['tiny' if args.tiny else 'full']
    if sizes['device'] == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('no GPU: run with --tiny for the CPU smoke run')
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        figures = run(sizes, work_dir)
    figures['wall_s'] = time.perf_counter() - start
    print(table(figures))
    if figures['step_ratio'] <= 1:
        # GA-DMS runs the scorer, a second text view and the MTP head on top
        # of CLIP-SDM's step: a ratio at or below 1 means the timings were
        # disturbed (another job on the machine), not a faster GA-DMS
        print(f'warning: GA-DMS / CLIP-SDM step ratio '
              f'{figures["step_ratio"]:.2f} <= 1: the machine was busy; '
              'rerun on a quiet one')
    with open(args.out + '.part', 'w') as f:
        json.dump(figures, f, indent=1)
    os.replace(args.out + '.part', args.out)
    print(f'wrote {args.out} ({figures["wall_s"]:.0f} s)')


if __name__ == '__main__':
    main()
