"""Time one training step of GA-DMS against CLIP-SDM at equal batch.

Both models are built in this process with the same backbone; each step is
forward + backward + Adam update on one fixed batch (random images, random
captions of realistic length). Prints the median step time of each and the
ratio GA-DMS / CLIP-SDM.

    .venv/bin/python benchmarks/train_step.py --model tiny --batch 64
    .venv/bin/python benchmarks/train_step.py --model vitb16 --batch 4
    # on a GPU: --model vitb16 --batch 64 --device cuda --bf16
"""
import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from os import path as osp

import torch
from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from gadms.models.utils import TokenScoreBank  # noqa: E402
from gadms.registry import MODELS  # noqa: E402
from gadms.structures import TextPersonDataSample  # noqa: E402
from gadms.utils import register_all_modules  # noqa: E402

MODEL_CONFIGS = {
    'tiny': ('configs/_base_/models/clip-sdm_tiny.py',
             'configs/_base_/models/gadms_tiny.py'),
    'vitb16': ('configs/_base_/models/clip-sdm_vitb16.py',
               'configs/_base_/models/gadms_vitb16.py'),
}


def make_batch(batch: int, image_size, caption_tokens: int) -> dict:
    inputs = [
        torch.randint(0, 256, (3, *image_size), dtype=torch.uint8)
        for _ in range(batch)
    ]
    samples = []
    for index in range(batch):
        ids = torch.zeros(1, 77, dtype=torch.long)
        ids[0, 0] = 49406
        ids[0, 1:caption_tokens + 1] = torch.randint(1, 49405,
                                                     (caption_tokens, ))
        ids[0, caption_tokens + 1] = 49407
        sample = TextPersonDataSample().set_pid(index // 2).set_text_ids(ids)
        sample.set_metainfo(dict(sample_idx=index))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def time_steps(model, batch: dict, steps: int, device: str,
               bf16: bool) -> float:
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5,
        eps=1e-3)
    data = model.data_preprocessor(batch, True)
    times = []
    for _ in range(steps + 1):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        with (torch.autocast(device, dtype=torch.bfloat16)
              if bf16 else nullcontext()):
            losses = model(**data, mode='loss')
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first step warms up


def build(config_path: str, device: str):
    cfg = Config.fromfile(config_path).model
    cfg.backbone.pretrained = None
    torch.manual_seed(0)
    return MODELS.build(cfg).to(device).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', choices=list(MODEL_CONFIGS),
                        default='tiny')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--caption-tokens', type=int, default=30)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--bf16', action='store_true')
    args = parser.parse_args()
    register_all_modules()
    baseline_cfg, gadms_cfg = MODEL_CONFIGS[args.model]
    baseline = build(baseline_cfg, args.device)
    gadms = build(gadms_cfg, args.device)
    gadms.score_bank = TokenScoreBank(args.batch)
    image_size = tuple(baseline.backbone.clip.visual.image_size)
    batch = make_batch(args.batch, image_size, args.caption_tokens)
    baseline_time = time_steps(baseline, batch, args.steps, args.device,
                               args.bf16)
    gadms_time = time_steps(gadms, batch, args.steps, args.device,
                            args.bf16)
    print(f'model={args.model} batch={args.batch} device={args.device} '
          f'bf16={args.bf16} threads={torch.get_num_threads()}')
    print(f'CLIP-SDM step: {baseline_time:.3f} s')
    print(f'GA-DMS step:   {gadms_time:.3f} s')
    print(f'ratio GA-DMS / CLIP-SDM: {gadms_time / baseline_time:.2f}x')


if __name__ == '__main__':
    main()
