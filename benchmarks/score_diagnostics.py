"""Which tokens does a trained GA-DMS score as noise?

Reads the score bank saved in a GA-DMS checkpoint trained on noisy
SynthPerson and groups the token scores of the training captions into:
tokens of injected noise clauses, colour words (attributes) and all other
content tokens. Prints each group's mean score and the mean masking
probabilities the neck derives from it (p_n for the SDM view, p_i for
MTP).

    .venv/bin/python benchmarks/score_diagnostics.py CONFIG CHECKPOINT
    # score again with the checkpoint's model, normalising per caption
    .venv/bin/python benchmarks/score_diagnostics.py CONFIG CHECKPOINT \
        --rescore sample

For a corpus whose noise is known (``benchmarks/miniature_paper.py`` writes
``noise_spans.json`` next to its stage-1 corpus), ``--noise-spans`` prints
the selectivity table instead: the masking rates of each view on injected
noise tokens and on correct colour words, per score normalisation.
"""
import argparse
import json
import re
import sys
from os import path as osp

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from gadms.cli import register_all_modules  # noqa: E402
from gadms.common.checkpoint_compat import (  # noqa: E402
    allow_mmengine_checkpoint_globals)
from gadms.datasets.synth.captions import COLOUR_WORDS, NOISE_CLAUSES  # noqa
from gadms.datasets.transforms import get_tokenizer  # noqa: E402
from gadms.registry import DATASETS, MODELS  # noqa: E402

# checkpoints are read with torch.load (weights-only)
allow_mmengine_checkpoint_globals()


def token_groups(caption: str, tokenizer) -> dict:
    """Positions (in the 77-id row) of noise-clause and colour tokens."""
    ids = tokenizer([caption])[0].tolist()
    groups = {'noise clause': set(), 'colour word': set()}
    for clause in NOISE_CLAUSES:
        clause_ids = tokenizer.encode(clause)
        for start in range(1, len(ids) - len(clause_ids)):
            if ids[start:start + len(clause_ids)] == clause_ids:
                groups['noise clause'].update(
                    range(start, start + len(clause_ids)))
    colour_ids = {tokenizer.encode(word)[0] for word in COLOUR_WORDS}
    for position, token in enumerate(ids):
        if token in colour_ids:
            groups['colour word'].add(position)
    eot = ids.index(max(ids))
    groups['other content'] = set(range(1, eot)) - groups[
        'noise clause'] - groups['colour word']
    return groups


def rescore(cfg: Config, checkpoint: dict, scope: str) -> torch.Tensor:
    """Score every training caption with the trained model (clean test
    pipeline, batches of 64) and a given normalisation scope."""
    model = MODELS.build(cfg.model)
    model.load_state_dict(checkpoint['state_dict'])
    model.scorer.norm_scope = scope
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, pipeline=cfg.test_pipeline))
    scores = []
    for start in range(0, len(dataset), 64):
        batch = pseudo_collate(
            [dataset[i] for i in range(start, min(start + 64,
                                                  len(dataset)))])
        data = model.data_preprocessor(batch)['inputs']
        with torch.no_grad():
            image_tokens = model.backbone.encode_image(data['images'])
        scores.append(model.scorer(model.backbone, data['text_ids'],
                                   image_tokens))
    return torch.cat(scores)


def _training_samples(cfg: Config, pipeline=()):
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                  pipeline=list(pipeline)))
    return dataset


def _bank_rows(config: str, checkpoint: str) -> tuple:
    """A GA-DMS checkpoint's score bank ``[num_captions, 77]``, the
    training captions of its rows (each row's sample holds one caption),
    their ``[num_captions, 77]`` token ids, its config and dataset."""
    register_all_modules()
    cfg = Config.fromfile(config)
    bank = torch.load(checkpoint, map_location='cpu',
                      weights_only=True)['score_bank'].float()
    dataset = _training_samples(cfg)
    captions = [dataset.get_data_info(i)['captions'][0]
                for i in range(len(dataset))]
    ids = torch.from_numpy(get_tokenizer(77)(captions))
    return bank, captions, ids, cfg, dataset


def _content(ids: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` bool: the positions between SOT and EOT."""
    positions = torch.arange(ids.shape[1])[None]
    return (positions > 0) & (positions < ids.argmax(dim=1, keepdim=True))


def control_statistics(config: str, checkpoint: str) -> dict:
    """Mean token score of a GA-DMS checkpoint's score bank over the
    content tokens of the training captions, and the mean selection rates
    (p_n, p_i) the neck derives from those scores (with its budget, if
    any): the settings of the constant-score and uniform-masking
    controls."""
    bank, _, ids, cfg, _ = _bank_rows(config, checkpoint)
    content = _content(ids)
    p_noise, p_info = MODELS.build(cfg.model.neck).view_probs(ids, bank)
    return dict(mean_score=float(bank[content].mean()),
                rates=(float(p_noise[content].mean()),
                       float(p_info[content].mean())))


def bank_statistics(config: str, checkpoint: str, spans_path: str) -> dict:
    """How a checkpoint's token scores (its score bank: the scores its
    last epoch masked with) treat the injected noise tokens of the
    training captions (``noise_spans.json``) against their correct colour
    words: the AUC P(colour word scored above noise token, ties half),
    and the noise view's mean selection probability on content tokens, on
    noise tokens and on colour words (the neck's ``view_probs``, budget
    included), over the captions the scorer wrote (``unscored_captions``
    counts the others)."""
    bank, captions, ids, cfg, dataset = _bank_rows(config, checkpoint)
    with open(spans_path, encoding='utf-8') as f:
        spans = json.load(f)
    tokenizer = get_tokenizer(77)
    p_noise, _ = MODELS.build(cfg.model.neck).view_probs(ids, bank)
    kinds = {'noise': torch.zeros_like(ids, dtype=torch.bool),
             'attribute': torch.zeros_like(ids, dtype=torch.bool)}
    # a row the scorer wrote has its SOT scored 0; a row no epoch visited
    # (a tiny run's dropped last batches) still holds the bank's initial
    # value and says nothing about the scorer
    scored = bank[:, 0] == 0
    for row, caption in enumerate(captions):
        path = dataset.get_data_info(row)['img_path']
        recorded = recorded_spans(spans, path, caption, spans_path)
        if not scored[row]:
            continue
        labels = noise_token_labels(caption, recorded, tokenizer)
        for kind, positions in labels.items():
            kinds[kind][row, sorted(positions)] = True
    return dict(
        auc=_auc(bank[kinds['attribute']], bank[kinds['noise']]),
        masked_content=float(p_noise[_content(ids) & scored[:, None]].mean()),
        masked_noise=float(p_noise[kinds['noise']].mean()),
        masked_attribute=float(p_noise[kinds['attribute']].mean()),
        noise_tokens=int(kinds['noise'].sum()),
        attribute_tokens=int(kinds['attribute'].sum()),
        unscored_captions=int((~scored).sum()))


def recorded_spans(spans: dict, path: str, caption: str,
                   spans_path: str) -> list:
    """The noise spans ``noise_spans.json`` records for ``caption`` of the
    image at ``path``; it lists every training caption (clean ones with
    ``[]``), so a caption it lacks is an error, not a clean caption."""
    known = spans.get(path, {})
    if caption not in known:
        raise ValueError(f'{spans_path}: no noise spans recorded for {path}, '
                         f'caption {caption!r}')
    return known[caption]


def noise_token_labels(caption: str, spans: list, tokenizer) -> dict:
    """Token positions (in the 77-id row) of a caption's injected noise
    (character ``spans`` of :class:`SimulatedMLLMCaptioner`) and of its
    correct colour words."""
    def token_range(start: int, end: int) -> range:
        # CLIP's BPE splits words first, so a prefix ending at a word
        # boundary encodes to the tokens before that word
        return range(1 + len(tokenizer.encode(caption[:start])),
                     1 + len(tokenizer.encode(caption[:end])))

    noise = set()
    for _, start, end in spans:
        noise.update(token_range(start, end))
    attribute = set()
    for match in re.finditer(r'\b(' + '|'.join(COLOUR_WORDS) + r')\b',
                             caption):
        positions = set(token_range(match.start(), match.end()))
        if not positions & noise:
            attribute.update(positions)
    return dict(noise=noise, attribute=attribute)


SEPARATION_SIGNALS = ('GASS (after the ReLU)', 'GASS layer sum (signed)',
                      'distance to EOT')
NORMALISATIONS = {
    'min-max over the batch (paper)': dict(norm_scope='batch'),
    'min-max per caption': dict(norm_scope='sample'),
    'min-max over the batch, power 0.5': dict(norm_scope='batch',
                                              power=0.5),
    'rank within the caption': dict(norm='rank'),
    'rank of the signed sum (no ReLU)': dict(norm='rank', relu=False),
}


def selectivity_table(config: str, checkpoint: str, spans_path: str,
                      pipeline: list, batch_size: int = 64) -> list:
    """Masking rates on injected noise tokens and on correct attribute
    (colour) words of the training corpus, for each normalisation of the
    trained model's raw GASS scores (batches of ``batch_size`` in dataset
    order), and how well raw signals separate the two kinds of token (AUC).
    Returns the two tables (lists of rows, header first)."""
    register_all_modules()
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint, map_location='cpu',
                                     weights_only=True)['state_dict'])
    with open(spans_path, encoding='utf-8') as f:
        spans = json.load(f)
    dataset = _training_samples(cfg, pipeline)
    tokenizer = get_tokenizer(77)
    scorers = {name: MODELS.build(dict(type='GradAttnScorer', **kwargs))
               for name, kwargs in NORMALISATIONS.items()}
    rates = {name: {'noise': [], 'attribute': []} for name in scorers}
    # raw signals, to see how well they separate the two kinds of token
    signals = {name: {'noise': [], 'attribute': []}
               for name in SEPARATION_SIGNALS}
    for start in range(0, len(dataset), batch_size):
        indices = range(start, min(start + batch_size, len(dataset)))
        data = model.data_preprocessor(
            pseudo_collate([dataset[i] for i in indices]))['inputs']
        with torch.no_grad():
            image_feats = model.extract_image_feat(data['images'])
        signed = model.scorer.relu
        model.scorer.relu = False
        raw = model.scorer._raw_scores(model.backbone, data['text_ids'],
                                       image_feats.float()).detach()
        model.scorer.relu = signed
        eot = data['text_ids'].argmax(dim=1, keepdim=True)
        distance = (eot - torch.arange(raw.shape[1])[None]).float()
        raw_signals = dict(zip(SEPARATION_SIGNALS,
                               (raw.relu(), raw, distance)))
        labels = []
        for i in indices:
            info = dataset.get_data_info(i)
            caption = info['captions'][0]
            labels.append(noise_token_labels(
                caption, recorded_spans(spans, info['img_path'], caption,
                                        spans_path), tokenizer))
        for row, label in enumerate(labels):
            for kind, positions in label.items():
                for name, values in raw_signals.items():
                    signals[name][kind].append(
                        values[row, sorted(positions)])
        for name, scorer in scorers.items():
            scores = scorer.normalise(raw if not scorer.relu else raw.relu(),
                                      data['text_ids'])
            p_noise, p_info = model.neck.selection_probs(scores)
            for row, label in enumerate(labels):
                for kind, positions in label.items():
                    positions = sorted(positions)
                    rates[name][kind].append(torch.stack(
                        [p_noise[row, positions], p_info[row, positions]]))
    table = [['normalisation', 'noise view: noise', 'noise view: colour',
              'selectivity', 'MTP view: colour', 'MTP view: noise',
              'selectivity']]
    for name, kinds in rates.items():
        noise = torch.cat(kinds['noise'], dim=1).mean(dim=1)
        attribute = torch.cat(kinds['attribute'], dim=1).mean(dim=1)
        table.append([
            name, f'{noise[0]:.3f}', f'{attribute[0]:.3f}',
            f'{noise[0] / attribute[0]:.2f}x', f'{attribute[1]:.3f}',
            f'{noise[1]:.3f}', f'{attribute[1] / noise[1]:.2f}x'])
    separation = [['raw signal', 'P(colour word above noise token)']]
    for name, kinds in signals.items():
        auc = _auc(torch.cat(kinds['attribute']), torch.cat(kinds['noise']))
        separation.append([name, f'{auc:.3f}'])
    for name in SEPARATION_SIGNALS[:2]:
        auc = _auc(*_position_debiased(signals[name],
                                       signals['distance to EOT']))
        separation.append([f'{name} minus its mean at each distance to EOT',
                           f'{auc:.3f}'])
    return table, separation


def _position_debiased(values: dict, distances: dict) -> tuple:
    """(attribute, noise) values with the mean over both kinds at the same
    distance to EOT subtracted: what the score says beyond position."""
    kinds = ('attribute', 'noise')
    value = torch.cat([torch.cat(values[k]) for k in kinds])
    distance = torch.cat([torch.cat(distances[k]) for k in kinds]).long()
    _, group = distance.unique(return_inverse=True)
    means = torch.zeros(int(group.max()) + 1).index_add_(0, group, value) / \
        torch.bincount(group).float()
    residual = value - means[group]
    num_attribute = sum(len(v) for v in values['attribute'])
    return residual[:num_attribute], residual[num_attribute:]


def _auc(high: torch.Tensor, low: torch.Tensor) -> float:
    """P(a ``high`` value > a ``low`` value), ties counted half (the
    Mann-Whitney AUC, from average ranks)."""
    values = torch.cat([high, low]).double()
    _, inverse, counts = values.unique(return_inverse=True,
                                       return_counts=True)
    counts = counts.double()
    average_rank = counts.cumsum(0) - (counts - 1) / 2  # 1-based
    rank_sum = average_rank[inverse[:len(high)]].sum()
    return float((rank_sum - len(high) * (len(high) + 1) / 2) /
                 (len(high) * len(low)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--rescore', choices=['batch', 'sample'],
                        help='recompute the scores with this scope instead '
                        'of reading the saved bank')
    parser.add_argument('--noise-spans',
                        help="a corpus's noise_spans.json: print the "
                        'selectivity table per normalisation')
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.noise_spans:
        pipeline = cfg.test_dataloader.dataset.datasets[0].pipeline \
            if 'datasets' in cfg.test_dataloader.dataset else \
            cfg.test_dataloader.dataset.pipeline
        for table in selectivity_table(args.config, args.checkpoint,
                                       args.noise_spans, pipeline):
            for row in table:
                print(' | '.join(row))
        return
    dataset_cfg = dict(cfg.train_dataloader.dataset, pipeline=[])
    dataset = DATASETS.build(dataset_cfg)
    checkpoint = torch.load(args.checkpoint, map_location='cpu',
                            weights_only=True)
    bank = rescore(cfg, checkpoint, args.rescore) if args.rescore else \
        checkpoint['score_bank'].float()
    neck = MODELS.build(cfg.model.neck)
    tokenizer = get_tokenizer(77)
    collected = {}
    for index in range(len(dataset)):
        caption = dataset.get_data_info(index)['captions'][0]
        for name, positions in token_groups(caption, tokenizer).items():
            collected.setdefault(name, []).extend(
                bank[index, sorted(positions)].tolist())
    print(f'{"tokens":<15}{"count":>8}{"mean score":>12}{"p_noise":>10}'
          f'{"p_info":>10}')
    for name, scores in collected.items():
        scores = torch.tensor(scores)
        p_noise, p_info = neck.selection_probs(scores)
        print(f'{name:<15}{len(scores):>8}{scores.mean():>12.3f}'
              f'{p_noise.mean():>10.3f}{p_info.mean():>10.3f}')


if __name__ == '__main__':
    main()
