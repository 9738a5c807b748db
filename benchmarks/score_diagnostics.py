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
"""
import argparse
import sys
from os import path as osp

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from gadms.datasets.synth.captions import COLOUR_WORDS, NOISE_CLAUSES  # noqa
from gadms.datasets.transforms import get_tokenizer  # noqa: E402
from gadms.registry import DATASETS, MODELS  # noqa: E402
from gadms.utils import register_all_modules  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--rescore', choices=['batch', 'sample'],
                        help='recompute the scores with this scope instead '
                        'of reading the saved bank')
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
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
