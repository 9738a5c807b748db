"""The curve of issue #27: what hard noise masking gains over CLIP-SDM
against the quality of the scorer that guides it.

Reads the ``curve.json`` that ``benchmarks/miniature_paper.py --regime
hallucination`` writes (one point per scored arm: its scorer's AUC on
correct vs wrong colour words, and its paired R1 / mAP difference to
CLIP-SDM with the standard error) and draws both differences against the
AUC: the oracle with flipped labels as a line from q = 0 (AUC 1) to
q = 0.5 (chance), GASS's arms as separate points.

    .venv/bin/python benchmarks/plot_masking_curve.py \\
        work_dirs/miniature/hallucination/curve.json --out curve.png

Several ``curve.json`` files draw on one figure (e.g. issue #27's sweep,
``docs/images/hallucination_curve_issue27.json``, with issue #35's
guidance scorers).
"""
import argparse
import json
import os
from typing import List


def draw_quality_curve(curve: List[dict], path: str) -> None:
    """Draw the R1 and mAP differences to CLIP-SDM against the scorer AUC
    into ``path`` (PNG, written atomically)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    # the hard oracle arms, from flip rate 0 up: the line between the ends
    line = sorted((p for p in curve if p['oracle'] and 'hard' in p['arm']),
                  key=lambda p: p['flip_rate'])
    for ax, metric in zip(axes, ('R1', 'mAP')):
        key = f'{metric} - CLIP-SDM'
        drawn = [p for p in line if p[key]]
        ax.errorbar([p['auc'] for p in drawn], [p[key][0] for p in drawn],
                    yerr=[p[key][1] for p in drawn], marker='o', capsize=3,
                    label='oracle, hard, labels flipped at rate q')
        for point in drawn:
            ax.annotate(f'q={point["flip_rate"]:g}',
                        (point['auc'], point[key][0]), fontsize=7,
                        textcoords='offset points', xytext=(4, 4))
        for point in curve:
            if point in line or not point[key]:
                continue
            ax.errorbar(point['auc'], point[key][0], yerr=point[key][1],
                        marker='s' if point['oracle'] else '^', capsize=3,
                        linestyle='none', label=point['arm'])
        ax.axhline(0.0, color='grey', linestyle='--', linewidth=1)
        ax.set_xlabel('scorer AUC: correct colour word scored above a '
                      'wrong one')
        ax.set_ylabel(f'{metric} minus CLIP-SDM (paired by seed)')
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path + '.part.png', dpi=120)
    plt.close(fig)
    os.replace(path + '.part.png', path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('curves', nargs='+', help='curve.json files of the '
                        'hallucination regime, drawn together')
    parser.add_argument('--out', required=True, help='PNG to write')
    args = parser.parse_args()
    points = []
    for path in args.curves:
        with open(path, encoding='utf-8') as f:
            points += json.load(f)
    draw_quality_curve(points, args.out)


if __name__ == '__main__':
    main()
