"""Tiny GA-DMS vs the tiny CLIP-SDM baseline on noisy SynthPerson.

Both train on SynthPerson whose training captions carry noise (40% with an
irrelevant clause, 10% with a wrong colour word) for the same epochs and
seeds, and are tested on the clean test split. Prints a markdown table of
test R1 / mAP per seed and the means, and writes it to --out.

    .venv/bin/python benchmarks/noise_robustness.py --seeds 0 1 2
"""
import argparse
import json
import os.path as osp
import statistics
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'CLIP-SDM': 'configs/baselines/clip-sdm_tiny_1xb64_synthperson-noise40.py',
    'GA-DMS': 'configs/gadms/gadms_tiny_1xb64_synthperson-noise40.py',
    'GA-DMS, constant scores':
    'configs/gadms/gadms_tiny_1xb64_synthperson-noise40_constant-scores.py',
}


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def train_and_test(name: str, config: str, seed: int, work_root: str,
                   epochs: int) -> dict:
    folder = name.replace(' ', '').replace(',', '_')
    work_dir = osp.join(work_root, f'{folder}_seed{seed}')
    start = time.time()
    run('tools/train.py', config, '--work-dir', work_dir, '--cfg-options',
        f'randomness.seed={seed}', f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}')
    out = osp.join(work_dir, 'test_metrics.json')
    run('tools/test.py', config, osp.join(work_dir, f'epoch_{epochs}.pth'),
        '--work-dir', work_dir, '--out', out)
    with open(out) as f:
        metrics = json.load(f)
    metrics['minutes'] = (time.time() - start) / 60
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--models', nargs='+', choices=list(CONFIGS),
                        default=['CLIP-SDM', 'GA-DMS'])
    parser.add_argument('--work-root', default='work_dirs/noise_robustness')
    parser.add_argument('--out', default=None,
                        help='write the markdown table here too')
    args = parser.parse_args()
    results = {name: [] for name in args.models}
    for seed in args.seeds:
        for name in args.models:
            metrics = train_and_test(name, CONFIGS[name], seed,
                                     args.work_root, args.epochs)
            results[name].append(metrics)
            print(f'{name} seed {seed}: R1 {metrics["t2i/R1"]:.2f} mAP '
                  f'{metrics["t2i/mAP"]:.2f} ({metrics["minutes"]:.1f} min)',
                  flush=True)
    lines = ['| model | ' + ' | '.join(f'seed {s} R1 / mAP'
                                       for s in args.seeds) +
             ' | mean R1 | mean mAP | minutes per run |',
             '| --- ' * (len(args.seeds) + 4) + '|']
    for name, runs in results.items():
        cells = [f'{m["t2i/R1"]:.2f} / {m["t2i/mAP"]:.2f}' for m in runs]
        mean_r1 = statistics.mean(m['t2i/R1'] for m in runs)
        mean_map = statistics.mean(m['t2i/mAP'] for m in runs)
        minutes = statistics.mean(m['minutes'] for m in runs)
        lines.append(f'| {name} | ' + ' | '.join(cells) +
                     f' | {mean_r1:.2f} | {mean_map:.2f} | {minutes:.1f} |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
