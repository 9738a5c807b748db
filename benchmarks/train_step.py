"""Time one training step of GA-DMS against CLIP-SDM at equal batch.

Both models are built in this process with the same backbone; each step is
forward + backward + Adam update on one fixed batch (random images, random
captions of realistic length). Prints the median step time of each and the
ratio GA-DMS / CLIP-SDM.

    .venv/bin/python benchmarks/train_step.py --model tiny --batch 64
    .venv/bin/python benchmarks/train_step.py --model vitb16 --batch 4
    # on a GPU: --model vitb16 --batch 64 --device cuda --bf16
    # GA-DMS with other token scorers, on SynthPerson's captions (colour
    # words for the counterfactual check to substitute):
    .venv/bin/python benchmarks/train_step.py --captions synthperson \
        --scorers gass counterfactual consensus combined
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
from gadms.cli import register_all_modules  # noqa: E402
from gadms.datasets import SynthPerson, get_tokenizer  # noqa: E402
from gadms.models.score_bank import TokenScoreBank  # noqa: E402
from gadms.registry import MODELS  # noqa: E402
from gadms.structures import TextPersonDataSample  # noqa: E402

MODEL_CONFIGS = {
    'tiny': ('configs/_base_/models/clip-sdm_tiny.py',
             'configs/_base_/models/gadms_tiny.py'),
    'vitb16': ('configs/_base_/models/clip-sdm_vitb16.py',
               'configs/_base_/models/gadms_vitb16.py'),
}


LEXICON = 'configs/_base_/lexicons/synthperson.py'
# GA-DMS's scorer for each --scorers name (None: the config's GASS)
SCORERS = {
    'gass': None,
    'counterfactual': lambda lexicon: dict(
        type='CounterfactualTokenScorer', lexicon=lexicon),
    'consensus': lambda lexicon: dict(type='ConsensusTokenScorer'),
    'combined': lambda lexicon: dict(
        type='CombinedTokenScorer', mode='tiebreak', scorers=[
            dict(type='ConsensusTokenScorer'),
            dict(type='CounterfactualTokenScorer', lexicon=lexicon,
                 output='win')]),
}


def caption_ids(batch: int, caption_tokens: int, captions: str):
    """``[batch, 77]`` ids: random tokens, or SynthPerson's captions."""
    if captions == 'synthperson':
        synth = SynthPerson(split='train', test_mode=True, num_identities=dict(
            train=batch, val=1, test=1), images_per_identity=1)
        texts = [synth.get_data_info(i)['captions'][0] for i in range(batch)]
        return torch.from_numpy(get_tokenizer(77)(texts))
    ids = torch.zeros(batch, 77, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:caption_tokens + 1] = torch.randint(1, 49405,
                                                 (batch, caption_tokens))
    ids[:, caption_tokens + 1] = 49407
    return ids


def make_batch(batch: int, image_size, caption_tokens: int,
               captions: str = 'random') -> dict:
    inputs = [
        torch.randint(0, 256, (3, *image_size), dtype=torch.uint8)
        for _ in range(batch)
    ]
    samples = []
    for index, ids in enumerate(caption_ids(batch, caption_tokens,
                                            captions)):
        sample = TextPersonDataSample().set_pid(index // 2).set_text_ids(
            ids[None])
        # consensus values as ConsensusTokens leaves them (all agree): the
        # scorer only reads them
        sample.set_metainfo(dict(sample_idx=index,
                                 token_consensus=(ids[None] > 0).float()))
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


def build(config_path: str, device: str, scorer: dict = None):
    cfg = Config.fromfile(config_path).model
    cfg.backbone.pretrained = None
    if scorer is not None:
        cfg.scorer = scorer
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
    parser.add_argument('--captions', choices=['random', 'synthperson'],
                        default='random',
                        help='random tokens (--caption-tokens long) or '
                        "SynthPerson's captions")
    parser.add_argument('--scorers', nargs='+', choices=list(SCORERS),
                        default=['gass'],
                        help="GA-DMS's token scorer, one step time each")
    args = parser.parse_args()
    register_all_modules()
    lexicon = Config.fromfile(LEXICON).attribute_lexicon.to_dict()
    baseline_cfg, gadms_cfg = MODEL_CONFIGS[args.model]
    baseline = build(baseline_cfg, args.device)
    image_size = tuple(baseline.backbone.clip.visual.image_size)
    batch = make_batch(args.batch, image_size, args.caption_tokens,
                       args.captions)
    baseline_time = time_steps(baseline, batch, args.steps, args.device,
                               args.bf16)
    print(f'model={args.model} batch={args.batch} device={args.device} '
          f'bf16={args.bf16} threads={torch.get_num_threads()} '
          f'captions={args.captions}')
    print(f'CLIP-SDM step: {baseline_time:.3f} s')
    for name in args.scorers:
        scorer = SCORERS[name] and SCORERS[name](lexicon)
        gadms = build(gadms_cfg, args.device, scorer)
        gadms.score_bank = TokenScoreBank(args.batch)
        gadms_time = time_steps(gadms, batch, args.steps, args.device,
                                args.bf16)
        print(f'GA-DMS ({name}) step: {gadms_time:.3f} s, ratio to '
              f'CLIP-SDM {gadms_time / baseline_time:.2f}x')


if __name__ == '__main__':
    main()
