"""A pretrained-start miniature of the GA-DMS paper's experiments (CPU).

    .venv/bin/python benchmarks/miniature_paper.py            # full table
    .venv/bin/python benchmarks/miniature_paper.py --fast     # smoke run
    .venv/bin/python benchmarks/miniature_paper.py --regime hallucination

Stage 0 aligns a tiny CLIP on coloured shapes with clean captions (another
domain) and saves it as an OpenAI-layout state dict; stage 1 continues
pretraining each arm from those weights (the backbone's ``pretrained``
path) on a WebPerson-style parquet corpus that gadms's corpus pipeline
builds from synthetic scenes with a simulated, error-making MLLM
captioner; stage 2 tests direct transfer on three SynthPerson-derived test
sets in the CUHK-PEDES, ICFG-PEDES and RSTPReid layouts, in one
``tools/test.py`` run per model. Arms: CLIP-SDM, GA-DMS, two controls
(masks from GA-DMS's mean score; uniform masks at GA-DMS's mean rates),
GA-DMS with rank-normalised signed scores (no ReLU), the oracle arms
(``AnnotatedTokenScorer`` on the corpus' recorded noise spans: GA-DMS with
them, without MTP, and uniform masks at the oracle's rates), and the
paper's ablation rows 2-6 (rows 1 and 7 are CLIP-SDM and GA-DMS).

``--regime hallucination`` (issue #27) builds its own stage-1 corpus in
which half the captions have one colour word replaced by a wrong one and
nothing else is wrong, and runs the arms of masking strength and scorer
quality: CLIP-SDM, GA-DMS, the oracle at the paper's strength and hard
(``noise_preset='hard'``), GASS hard, GASS hard with a per-caption budget of
1 or 2 tokens, and the hard oracle with a fraction q of its token labels
flipped (``--sweep-seeds`` for the last two kinds). Its report adds each
scorer's AUC on correct vs wrong colour words and what its noise view
masks; ``curve.json`` and ``curve.png`` (``benchmarks/plot_masking_curve.py``)
hold the R1 / mAP gain over CLIP-SDM against that AUC. Results under
``<work root>/hallucination``; stage 0 and the test sets are shared.

Issue #35's guidance arms (``GUIDANCE_ARMS``: CLIP-SDM, and caption
consensus, the counterfactual check and the two combined, each at the
paper's strength and hard) run in the hallucination regime on the corpus
(image groups: one image per identity, two captions), and in two more
regimes: ``hallucination-identity`` trains them on a benchmark-layout set
(SynthPerson written as CUHK-PEDES, several images and captions per
identity, half the captions with one wrong colour word; identity groups)
and ``clean`` on a corpus whose captions are all correct. In the noise
regime they run when ``--arms`` names them. ``--repeat-rate r`` builds
the hallucination corpus with correlated mistakes (a wrong colour word
repeated by the image's other caption with probability r), under
``<work root>/hallucination_r<r>``.

``--from-scratch`` skips stage 0: stage 1 trains every arm from random
weights (learning rate 3e-4, stage 0's), with its runs, results and
report under ``<work root>/from_scratch`` (corpus and test sets shared).

Runs are resumable: every finished (arm, seed) is appended to
``results.json`` in the work root and skipped by a re-run. At the end the
script prints the tables (terminaltables), writes them to ``report.md``,
draws the R1 figure and the selectivity table of the token scores on the
stage-1 corpus (``benchmarks/score_diagnostics.py``).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time
from typing import Dict, List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from benchmarks.miniature import arms as arm_configs  # noqa: E402
from benchmarks.miniature.corpus import (annotate_corpus,  # noqa: E402
                                         build_corpus)
from benchmarks.miniature.shapes import write_shapes_corpus  # noqa: E402
from benchmarks.miniature.transfer import (test_dataloader,  # noqa: E402
                                           write_test_sets)
from benchmarks.plot_masking_curve import draw_quality_curve  # noqa: E402
from benchmarks.score_diagnostics import (bank_statistics,  # noqa: E402
                                          control_statistics,
                                          selectivity_table)
from gadms.cli import register_all_modules  # noqa: E402
from gadms.common.checkpoint_compat import (  # noqa: E402
    allow_mmengine_checkpoint_globals)
from gadms.datasets import SynthPerson, export_synth_person  # noqa: E402
from gadms.registry import DATASETS  # noqa: E402
from gadms.testing.forked_tools import run_forked_tool  # noqa: E402

# stage 0's checkpoint is read with torch.load (weights-only)
allow_mmengine_checkpoint_globals()
REPO_ROOT = arm_configs.REPO_ROOT
# the clean regime's corpus: the simulated captioner makes no mistake
CLEAN_ERRORS = dict(background=0.0, hallucination=0.0, wrong_colour=0.0,
                    repetition=0.0, truncation=0.0)
MAIN_ARMS = ('CLIP-SDM', 'GA-DMS', arm_configs.CONSTANT_ARM,
             arm_configs.UNIFORM_ARM, 'GA-DMS, rank scores',
             arm_configs.ORACLE_ARM, arm_configs.ORACLE_UNIFORM_ARM,
             'oracle, no MTP')
ABLATION_ARMS = tuple(name for name in arm_configs.ARMS
                      if name.startswith('row'))
SIZES = dict(full=dict(shapes=1500, stage0_epochs=10, scenes=600, epochs=5,
                       batch=64, test_identities=40, train_identities=150),
             fast=dict(shapes=64, stage0_epochs=2, scenes=24, epochs=2,
                       batch=16, test_identities=4, train_identities=6))
REGIMES = ('noise', 'hallucination', 'hallucination-identity', 'clean')
# the benchmark-layout training set of hallucination-identity: SynthPerson
# as CUHK-PEDES, 4 photos x 2 captions per identity
IDENTITY_SET = dict(images_per_identity=4, captions_per_image=2, seed=21,
                    wrong_attribute_rate=0.5)


def _write_atomic(path: str, text: str) -> None:
    with open(path + '.part', 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(path + '.part', path)


def _run(*args: str, log: str) -> None:
    """Run a gadms tool in a process forked from a server that imported
    the tools' dependencies once (3-4 s saved per run); its output goes to
    ``log`` (shown on failure)."""
    if run_forked_tool(args, log, cwd=REPO_ROOT):
        with open(log, encoding='utf-8') as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{args[0]} failed ({log}):\n{tail}')


def stage0(root: str, sizes: dict) -> str:
    """Pretrain the tiny CLIP on shapes; returns the OpenAI-layout state
    dict file."""
    weights = osp.join(root, 'stage0', 'clip_openai.pth')
    if osp.exists(weights):
        return weights
    folder = osp.join(root, 'stage0')
    os.makedirs(folder, exist_ok=True)
    write_shapes_corpus(folder, sizes['shapes'])
    config = osp.join(folder, 'config.py')
    _write_atomic(config, arm_configs.stage0_config(
        folder, sizes['stage0_epochs']))
    _run('tools/train.py', config, '--work-dir', folder, '--cfg-options',
         'optim_wrapper.optimizer.lr=0.0003', log=osp.join(folder, 'log'))
    state = torch.load(
        osp.join(folder, f'epoch_{sizes["stage0_epochs"]}.pth'),
        map_location='cpu', weights_only=True)['state_dict']
    prefix = 'backbone.clip.'
    clip = {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}
    torch.save(clip, weights + '.part')
    os.replace(weights + '.part', weights)
    return weights


def stage1_corpus(root: str, sizes: dict,
                  errors: Optional[dict] = None) -> str:
    """The stage-1 corpus under ``root/corpus``, built once, with the
    simulated captioner's ``errors`` (its defaults without)."""
    folder = osp.join(root, 'corpus')
    if not osp.exists(osp.join(folder, 'corpus.done')):
        report = build_corpus(folder, sizes['scenes'],
                              **(dict(errors=errors) if errors else {}))
        _write_atomic(osp.join(folder, 'corpus.done'), json.dumps(report))
    annotate_corpus(folder)  # also a corpus built before the oracle arms
    return folder


def identity_training_set(root: str, sizes: dict) -> dict:
    """The hallucination-identity regime's training set under
    ``root/train_set``, written once: SynthPerson in the CUHK-PEDES
    layout with half its captions given one wrong colour word, and its
    ``noise_spans.json`` (reader image path -> caption -> spans). Returns
    the training dataset config (without pipeline)."""
    folder = osp.join(root, 'train_set')
    dataset = dict(type='CUHKPEDES', data_root=folder, split='train')
    done = osp.join(folder, 'train_set.done')
    if osp.exists(done):
        return dataset
    synth = dict(IDENTITY_SET, num_identities=dict(
        train=sizes['train_identities'], val=0, test=0))
    export_synth_person(folder, 'cuhk-pedes', splits=['train'], **synth)
    records = SynthPerson(split='train', test_mode=True, **synth)
    spans = {}
    for index in range(len(records)):
        record = records.get_data_info(index)
        for caption, note in zip(record['captions'],
                                 record['caption_annotations']):
            spans[caption] = [['wrong_colour', *span]
                              for span in note['noise_spans']]
    register_all_modules()
    reader = DATASETS.build(dict(dataset, test_mode=True))
    by_path = {}
    for index in range(len(reader)):
        info = reader.get_data_info(index)
        by_path[info['img_path']] = {c: spans[c] for c in info['captions']}
    _write_atomic(osp.join(folder, 'noise_spans.json'), json.dumps(by_path))
    _write_atomic(done, '')
    return dataset


def stage2_test_sets(root: str, sizes: dict) -> Dict[str, str]:
    folder = osp.join(root, 'test_sets')
    done = osp.join(folder, 'test_sets.done')
    if not osp.exists(done):
        roots = write_test_sets(folder, sizes['test_identities'])
        _write_atomic(done, json.dumps(roots))
    with open(done) as f:
        return json.load(f)


class Results:
    """(arm, seed) -> metrics, kept in a JSON list rewritten atomically."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: List[dict] = []
        if osp.exists(path):
            with open(path) as f:
                self.rows = json.load(f)

    def get(self, arm: str, seed: int):
        return next((r for r in self.rows
                     if r['arm'] == arm and r['seed'] == seed), None)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        _write_atomic(self.path, json.dumps(self.rows, indent=1))


def train_and_test(root: str, arm: str, seed: int, spec: tuple,
                   context: dict, results: Results) -> dict:
    """Stage 1 (continued pretraining) and stage 2 (direct transfer) of
    one arm and seed, unless already in ``results``."""
    done = results.get(arm, seed)
    if done:
        return done
    folder = osp.join(root, 'runs', arm.replace(' ', '_').replace(
        ',', '').replace(':', '').replace('*', 'star'), f'seed{seed}')
    os.makedirs(folder, exist_ok=True)
    config = osp.join(folder, 'config.py')
    epochs = context['sizes']['epochs']
    _write_atomic(config, arm_configs.arm_config(
        arm_configs.ArmSpec(*spec), context['corpus'], context['weights'],
        epochs, context['sizes']['batch'],
        test_dataloader(context['test_roots'], arm_configs.TEST_PIPELINE),
        seed=seed, train_set=context.get('train_set')))
    start = time.time()
    log = osp.join(folder, 'log')
    _run('tools/train.py', config, '--work-dir', folder, '--cfg-options',
         f'randomness.seed={seed}',
         f'optim_wrapper.optimizer.lr={context["lr"]}', log=log)
    metrics_file = osp.join(folder, 'test_metrics.json')
    _run('tools/test.py', config, osp.join(folder, f'epoch_{epochs}.pth'),
         '--work-dir', folder, '--out', metrics_file, log=log)
    with open(metrics_file) as f:
        metrics = json.load(f)
    row = dict(arm=arm, seed=seed, metrics=metrics,
               checkpoint=osp.join(folder, f'epoch_{epochs}.pth'),
               config=config, minutes=(time.time() - start) / 60)
    results.add(row)
    print(f'{arm} seed {seed}: R1 {metrics["t2i/R1"]:.2f} '
          f'({row["minutes"]:.1f} min)', flush=True)
    return row


def _benchmarks(rows: List[dict]) -> List[str]:
    keys = rows[0]['metrics']
    return sorted(k[:-len('/t2i/R1')] for k in keys
                  if k.endswith('/t2i/R1') and k != 't2i/R1')


def _mean_std(values: List[float]) -> str:
    if len(values) < 2:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def results_table(rows: List[dict], arms: List[str]) -> List[List[str]]:
    """Arms x (each test set, mean) R1 and mAP: mean ± std over seeds."""
    sets = _benchmarks(rows) + ['']
    header = ['arm', 'seeds'] + [
        f'{s or "mean"} {m}' for s in sets for m in ('R1', 'mAP')]
    table = [header]
    for arm in arms:
        runs = [r for r in rows if r['arm'] == arm]
        if not runs:
            continue
        cells = [arm, str(len(runs))]
        for name in sets:
            prefix = f'{name}/' if name else ''
            for metric in ('R1', 'mAP'):
                cells.append(_mean_std([r['metrics'][f'{prefix}t2i/{metric}']
                                        for r in runs]))
        table.append(cells)
    return table


def paired_difference(rows: List[dict], first: str, second: str,
                      metric: str) -> Optional[tuple]:
    """``first - second`` of the mean ``metric`` (R1 or mAP over the
    three sets), paired by seed: (mean, standard error, seeds), or None
    with fewer than two common seeds."""
    by_seed = {}
    for r in rows:
        if r['arm'] in (first, second):
            by_seed.setdefault(r['seed'], {})[r['arm']] = r['metrics']
    pairs = [v for v in by_seed.values() if len(v) == 2]
    if len(pairs) < 2:
        return None
    diffs = [p[first][f't2i/{metric}'] - p[second][f't2i/{metric}']
             for p in pairs]
    return (statistics.mean(diffs),
            statistics.stdev(diffs) / len(diffs)**0.5, len(pairs))


# two-sided 95% quantiles of Student's t by degrees of freedom (seeds - 1)
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447,
        7: 2.365, 8: 2.306, 9: 2.262}


def t_interval(mean: float, se: float, seeds: int) -> str:
    """The 95% t-interval of a paired difference over ``seeds`` seeds."""
    half = T_95[seeds - 1] * se
    return f'[{mean - half:+.2f}, {mean + half:+.2f}]'


def paired_table(rows: List[dict], pairs: List[tuple]) -> List[List[str]]:
    """Paired differences over common seeds (mean R1 and mAP over the
    three sets): mean difference, its standard error and 95% t-interval
    (with 3-5 seeds, not mean +- 2 SE)."""
    table = [['difference', 'seeds', 'R1', 'SE', 'R1 95% CI', 'mAP', 'SE',
              'mAP 95% CI']]
    for first, second in pairs:
        found = [paired_difference(rows, first, second, metric)
                 for metric in ('R1', 'mAP')]
        if found[0] is None:
            continue
        cells = [f'{first} - {second}', str(found[0][2])]
        for mean, se, seeds in found:
            cells += [f'{mean:+.2f}', f'{se:.2f}',
                      t_interval(mean, se, seeds)]
        table.append(cells)
    return table


def draw_figure(rows: List[dict], arms: List[str], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    sets = _benchmarks(rows)
    present = [a for a in arms if any(r['arm'] == a for r in rows)]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(present)
    for k, arm in enumerate(present):
        runs = [r for r in rows if r['arm'] == arm]
        means, stds = [], []
        for name in sets + ['']:
            key = f'{name}/t2i/R1' if name else 't2i/R1'
            values = [r['metrics'][key] for r in runs]
            means.append(statistics.mean(values))
            stds.append(statistics.stdev(values) if len(values) > 1 else 0)
        ax.bar([i + k * width for i in range(len(means))], means, width,
               yerr=stds, capsize=2, label=f'{arm} ({len(runs)} seeds)')
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sets) + 1)])
    ax.set_xticklabels(sets + ['mean'])
    ax.set_ylabel('direct-transfer R1 (%)')
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path + '.part.png', dpi=120)
    os.replace(path + '.part.png', path)


def _markdown(table: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(table[0]) + ' |',
             '|' + ' --- |' * len(table[0])]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table[1:]]
    return '\n'.join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-root', default='work_dirs/miniature')
    parser.add_argument('--seeds', type=int, nargs='+',
                        default=[0, 1, 2, 3, 4])
    parser.add_argument('--ablation-seeds', type=int, nargs='*',
                        default=[0, 1])
    parser.add_argument('--regime', choices=REGIMES, default='noise',
                        help="the stage-1 training data's caption errors "
                        'and the arms: noise (background and hallucinated '
                        'sentences, wrong colours, repetitions; the '
                        "paper's arms and the oracle), hallucination "
                        '(wrong colour words only; masking strength, '
                        'scorer quality and the guidance scorers), '
                        'hallucination-identity (the guidance scorers on a '
                        'benchmark-layout set with identity groups) or '
                        'clean (the guidance scorers on correct captions); '
                        'each but noise under WORK_ROOT/<regime>')
    parser.add_argument('--repeat-rate', type=float, default=0.0,
                        help='hallucination regime: the share of wrong '
                        "colour words that the image's other caption "
                        'repeats (results under '
                        'WORK_ROOT/hallucination_r<RATE>)')
    parser.add_argument('--sweep-seeds', type=int, nargs='*',
                        default=[0, 1, 2],
                        help='seeds of the hallucination sweep arms')
    parser.add_argument('--fast', action='store_true',
                        help='tiny sizes: a smoke run of every stage')
    parser.add_argument('--from-scratch', action='store_true',
                        help='no stage 0: stage 1 starts from random weights '
                        '(results under WORK_ROOT/from_scratch)')
    parser.add_argument('--epochs', type=int,
                        help='stage-1 epochs of --from-scratch (default: '
                        "the size's; results under "
                        'WORK_ROOT/from_scratch_e<EPOCHS>)')
    parser.add_argument('--arms', nargs='+', default=None,
                        help='run only these arms (in the noise regime '
                        'GA-DMS always runs first: the controls are derived '
                        'from it)')
    parser.add_argument('--figure', default=None,
                        help="write the figure here: the noise regime's R1 "
                        "per arm, the hallucination regime's scorer-quality "
                        'curve (default: in the work root)')
    return parser.parse_args()


def _wanted(args: argparse.Namespace, *arms: str) -> bool:
    """Whether ``--arms`` asks for any of ``arms`` (all arms without it)."""
    return args.arms is None or any(arm in args.arms for arm in arms)


def noise_regime(args: argparse.Namespace, root: str, context: dict,
                 results: Results) -> Dict[str, List[List[str]]]:
    """The paper's arms, the controls and the oracle arms on the default
    corpus (issues #18, #25); returns the report's tables."""
    specs = dict(arm_configs.ARMS)
    reference = train_and_test(root, 'GA-DMS', args.seeds[0],
                               specs['GA-DMS'], context, results)
    controls = control_statistics(reference['config'],
                                  reference['checkpoint'])
    specs.update(arm_configs.control_arms(controls['mean_score'],
                                          controls['rates']))
    specs.update(arm_configs.ORACLE_ARMS)
    notes = [f'controls from GA-DMS seed {args.seeds[0]}: '
             f'{json.dumps(controls)}']
    oracle = train_and_test(root, arm_configs.ORACLE_ARM, args.seeds[0],
                            specs[arm_configs.ORACLE_ARM], context, results
                            ) if _wanted(args, arm_configs.ORACLE_ARM,
                                         arm_configs.ORACLE_UNIFORM_ARM) \
        else None
    if oracle:
        oracle_controls = control_statistics(oracle['config'],
                                             oracle['checkpoint'])
        specs[arm_configs.ORACLE_UNIFORM_ARM] = arm_configs.uniform_arm(
            oracle_controls['rates'])
        notes.append(f'oracle rates from its seed {args.seeds[0]}: '
                     f'{json.dumps(oracle_controls)}')
    plan = [(arm, seed) for seed in args.seeds for arm in MAIN_ARMS]
    plan += [(arm, seed) for seed in args.ablation_seeds
             for arm in ABLATION_ARMS]
    # issue #35's scorers must not cost here: run when --arms names them
    specs.update((arm, spec) for arm, spec in
                 arm_configs.GUIDANCE_ARMS.items() if arm != 'CLIP-SDM')
    plan += [(arm, seed) for seed in args.seeds
             for arm in arm_configs.GUIDANCE_ARMS
             if args.arms and arm in args.arms and arm != 'CLIP-SDM']
    for arm, seed in plan:
        if _wanted(args, arm):
            train_and_test(root, arm, seed, specs[arm], context, results)

    guidance = [arm for arm in arm_configs.GUIDANCE_ARMS
                if arm != 'CLIP-SDM' and any(r['arm'] == arm
                                             for r in results.rows)]
    arms = list(MAIN_ARMS + ABLATION_ARMS) + guidance
    selectivity, separation = selectivity_table(
        reference['config'], reference['checkpoint'],
        osp.join(context['corpus'], 'noise_spans.json'),
        arm_configs.TEST_PIPELINE)
    draw_figure(results.rows, list(MAIN_ARMS),
                args.figure or osp.join(root, 'miniature_r1.png'))
    return dict(
        notes=notes,
        results=results_table(results.rows, arms),
        paired=paired_table(results.rows, [
            ('GA-DMS', arm_configs.CONSTANT_ARM),
            ('GA-DMS', arm_configs.UNIFORM_ARM),
            ('GA-DMS', 'CLIP-SDM'),
            ('GA-DMS, rank scores', arm_configs.CONSTANT_ARM),
            ('GA-DMS, rank scores', 'CLIP-SDM'),
            ('GA-DMS, rank scores', 'GA-DMS'),
            ('row 6: GASS, SDM*', 'CLIP-SDM'),
            ('row 5: GASS, MTP', 'CLIP-SDM'),
            ('GA-DMS', 'row 6: GASS, SDM*'),
            ('GA-DMS', 'row 5: GASS, MTP'),
            (arm_configs.ORACLE_ARM, 'CLIP-SDM'),
            (arm_configs.ORACLE_ARM, 'GA-DMS'),
            (arm_configs.ORACLE_ARM, arm_configs.ORACLE_UNIFORM_ARM),
            ('oracle, no MTP', 'CLIP-SDM'),
            (arm_configs.ORACLE_ARM, 'oracle, no MTP'),
        ] + [(arm, 'CLIP-SDM') for arm in guidance]),
        selectivity=selectivity, separation=separation)


def hallucination_regime(args: argparse.Namespace, root: str,
                         context: dict, results: Results
                         ) -> Dict[str, List[List[str]]]:
    """Issue #27: hallucinated colour words; the masking strength and the
    scorer quality that noise masking needs. Returns the report's
    tables; writes ``curve.json`` and draws the curve."""
    main_arms = {**arm_configs.HALLUCINATION_ARMS,
                 **arm_configs.GUIDANCE_ARMS}
    specs = {**main_arms, **arm_configs.SWEEP_ARMS}
    plan = [(arm, seed) for seed in args.seeds for arm in main_arms]
    plan += [(arm, seed) for seed in args.sweep_seeds
             for arm in arm_configs.SWEEP_ARMS]
    for arm, seed in plan:
        if _wanted(args, arm):
            train_and_test(root, arm, seed, specs[arm], context, results)
    spans = context['spans']
    curve = scorer_curve(specs, results.rows, spans)
    _write_atomic(osp.join(root, 'curve.json'), json.dumps(curve, indent=1))
    draw_quality_curve(curve, args.figure or osp.join(root, 'curve.png'))
    arms = [arm for arm in specs if any(r['arm'] == arm
                                        for r in results.rows)]
    return dict(
        results=results_table(results.rows, arms),
        paired=paired_table(
            results.rows, [(arm, 'CLIP-SDM') for arm in arms[1:]] +
            [(arm, 'GA-DMS') for arm in arms[2:]]),
        scorers=scorer_table(curve))


def scorer_curve(specs: dict, rows: List[dict], spans: str) -> List[dict]:
    """Per arm that keeps a score bank and has runs: its scorer as the
    first seed's last epoch masked with it (``bank_statistics`` against
    the training captions' recorded ``spans``), its mean R1 / mAP and the
    paired difference to CLIP-SDM."""
    curve = []
    for arm, spec in specs.items():
        runs = sorted((r for r in rows if r['arm'] == arm),
                      key=lambda r: r['seed'])
        if not runs or not spec.keeps_bank:
            continue
        point = dict(arm=arm, seeds=len(runs), flip_rate=spec.flip_rate,
                     oracle='oracle' in arm, **bank_statistics(
                         runs[0]['config'], runs[0]['checkpoint'], spans))
        for metric in ('R1', 'mAP'):
            found = paired_difference(rows, arm, 'CLIP-SDM', metric)
            point[metric] = statistics.mean(
                r['metrics'][f't2i/{metric}'] for r in runs)
            point[f'{metric} - CLIP-SDM'] = found and found[:2]
        curve.append(point)
    return curve


def guidance_regime(args: argparse.Namespace, root: str, context: dict,
                    results: Results) -> Dict[str, List[List[str]]]:
    """Issue #35's arms alone (the hallucination-identity and clean
    regimes): CLIP-SDM and each guidance scorer at both strengths, paired
    by seed, with each scorer's AUC and selection rates from its bank."""
    specs = arm_configs.GUIDANCE_ARMS
    for seed in args.seeds:
        for arm, spec in specs.items():
            if _wanted(args, arm):
                train_and_test(root, arm, seed, spec, context, results)
    curve = scorer_curve(specs, results.rows, context['spans'])
    _write_atomic(osp.join(root, 'curve.json'), json.dumps(curve, indent=1))
    draw_quality_curve(curve, args.figure or osp.join(root, 'curve.png'))
    arms = [arm for arm in specs if any(r['arm'] == arm
                                        for r in results.rows)]
    return dict(results=results_table(results.rows, arms),
                paired=paired_table(results.rows, [
                    (arm, 'CLIP-SDM') for arm in arms[1:]]),
                scorers=scorer_table(curve))


def scorer_table(curve: List[dict]) -> List[List[str]]:
    """Per scored arm: the scorer's AUC on correct vs wrong colour words,
    what the noise view selects, and R1 / mAP against CLIP-SDM."""
    table = [['arm', 'seeds', 'AUC', 'noise view: all tokens',
              'wrong words', 'correct colour words', 'R1 - CLIP-SDM (SE)',
              'mAP - CLIP-SDM (SE)']]
    for point in curve:
        cells = [point['arm'], str(point['seeds']), f'{point["auc"]:.3f}',
                 f'{point["masked_content"]:.3f}',
                 f'{point["masked_noise"]:.3f}',
                 f'{point["masked_attribute"]:.3f}']
        for metric in ('R1', 'mAP'):
            found = point[f'{metric} - CLIP-SDM']
            cells.append(f'{found[0]:+.2f} ({found[1]:.2f})' if found
                         else '')
        table.append(cells)
    return table


def main() -> None:
    from terminaltables import AsciiTable
    args = parse_args()
    sizes = dict(SIZES['fast' if args.fast else 'full'])
    if args.epochs and not args.from_scratch:
        raise SystemExit('--epochs goes with --from-scratch')
    data_root = osp.abspath(args.work_root)
    os.makedirs(data_root, exist_ok=True)
    # every regime but noise has its own corpus, runs and report
    regime_root = data_root if args.regime == 'noise' else osp.join(
        data_root, args.regime.replace('-', '_'))
    if args.repeat_rate:
        if args.regime != 'hallucination':
            raise SystemExit('--repeat-rate goes with --regime '
                             'hallucination')
        regime_root += f'_r{args.repeat_rate:g}'
    root = regime_root
    if args.from_scratch:
        root = osp.join(regime_root, 'from_scratch')
        if args.epochs:
            sizes['epochs'] = args.epochs
            root += f'_e{args.epochs}'
    os.makedirs(root, exist_ok=True)
    errors = dict(noise=None, clean=CLEAN_ERRORS).get(
        args.regime, dict(arm_configs.HALLUCINATION_ERRORS,
                          repeat_rate=args.repeat_rate))
    context = dict(sizes=sizes,
                   weights=None if args.from_scratch else stage0(
                       data_root, sizes),
                   lr=0.0003 if args.from_scratch else 0.0001,
                   test_roots=stage2_test_sets(data_root, sizes))
    if args.regime == 'hallucination-identity':
        context['train_set'] = identity_training_set(regime_root, sizes)
        context['corpus'] = None
        context['spans'] = osp.join(regime_root, 'train_set',
                                    'noise_spans.json')
    else:
        context['corpus'] = stage1_corpus(regime_root, sizes, errors)
        context['spans'] = osp.join(context['corpus'], 'noise_spans.json')
    results = Results(osp.join(root, 'results.json'))
    start = time.time()
    run = dict(noise=noise_regime, hallucination=hallucination_regime).get(
        args.regime, guidance_regime)
    tables = run(args, root, context, results)
    report = tables.pop('notes', [])
    report.append(f'runs: {len(results.rows)}, '
                  f'{sum(r["minutes"] for r in results.rows):.1f} min of '
                  f'training and testing in all; this call '
                  f'{(time.time() - start) / 60:.1f} min')
    for name, table in tables.items():
        print(AsciiTable(table, name).table)
        report.append(f'### {name}\n\n{_markdown(table)}')
    _write_atomic(osp.join(root, 'report.md'), '\n\n'.join(report) + '\n')
    print(f'report: {osp.join(root, "report.md")}')


if __name__ == '__main__':
    main()
