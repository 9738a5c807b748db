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


def _flip_sweep(curve: List[dict]) -> List[dict]:
    """The hard oracle with flipped labels (arms ``[prefix]oracle, hard,
    q=...``) and its unflipped end (``[prefix]oracle, hard``) of the same
    sweep, by flip rate: the line from a perfect scorer to chance."""
    flipped = [p for p in curve if 'oracle, hard, q=' in p['arm']]
    ends = {p['arm'].split('oracle, hard, q=')[0] + 'oracle, hard'
            for p in flipped}
    return sorted(flipped + [p for p in curve if p['arm'] in ends],
                  key=lambda p: p['flip_rate'])


def draw_quality_curve(curve: List[dict], path: str) -> None:
    """Draw the R1 and mAP differences to CLIP-SDM against the scorer AUC
    into ``path`` (PNG, written atomically)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    line = _flip_sweep(curve)
    others = [p for p in curve if p not in line]
    # one colour per arm (20 before one repeats); earlier issues' points
    # (their arms named '#N ...') drawn hollow
    colours = dict(zip((p['arm'] for p in others),
                       plt.cm.tab20.colors * 2))
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
        for point in others:
            if not point[key]:
                continue
            colour = colours[point['arm']]
            ax.errorbar(point['auc'], point[key][0], yerr=point[key][1],
                        marker='s' if point['oracle'] else '^', capsize=3,
                        linestyle='none', label=point['arm'], color=colour,
                        markerfacecolor='none' if point['arm'].startswith(
                            '#') else colour)
        ax.axhline(0.0, color='grey', linestyle='--', linewidth=1)
        ax.set_xlabel('scorer AUC: correct colour word scored above a '
                      'wrong one')
        ax.set_ylabel(f'{metric} minus CLIP-SDM (paired by seed)')
    axes[0].legend(fontsize=6, ncol=2)
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
