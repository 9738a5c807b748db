"""Configs of the miniature's stages and arms.

Every stage trains the tiny CLIP of ``configs/_base_/models/clip-sdm_tiny.py``
(3+3 layers, width 128, 96x32 images) with the tiny GA-DMS parts of
``configs/gadms/gadms_tiny_1xb64_synthperson.py`` (GASS on the last 2 text layers,
the paper's dual-mask thresholds, 2-layer MTP decoder, beta 0.4); an arm
changes only the parts it is about.
"""
import os.path as osp
import pprint
from typing import Dict, NamedTuple, Optional, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_SIZE = (96, 32)

TRAIN_PIPELINE = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=IMAGE_SIZE[::-1], keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='mmpretrain.RandomCrop', crop_size=IMAGE_SIZE, padding=4),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]



def _lexicon() -> dict:
    """SynthPerson's attribute lexicon (configs/_base_/lexicons)."""
    from mmengine.config import Config
    return Config.fromfile(osp.join(
        REPO_ROOT, 'configs/_base_/lexicons/synthperson.py')
    ).attribute_lexicon.to_dict()


LEXICON = _lexicon()


def annotated_train_pipeline(flip_rate: float = 0.0, flip_seed: int = 0,
                             oracle: bool = True,
                             consensus: bool = False) -> list:
    """The pipeline of the arms whose scorers read the data: the oracle's
    places each caption's recorded noise spans on its tokens
    (AnnotatedTokenScorer reads them), with a fraction ``flip_rate`` of
    the token labels flipped (draws seeded by ``flip_seed``); consensus
    adds each token's agreement with the other captions of its group
    (ConsensusTokens, for ConsensusTokenScorer)."""
    steps = []
    if oracle:
        steps.append(dict(type='AnnotateTokens', context_length=77))
        if flip_rate:
            steps[-1].update(flip_rate=flip_rate, flip_seed=flip_seed)
    if consensus:
        steps.append(dict(type='ConsensusTokens', lexicon=LEXICON,
                          context_length=77))
    return TRAIN_PIPELINE[:-1] + steps + [TRAIN_PIPELINE[-1]]


TEST_PIPELINE = [
    dict(type='LoadPersonImage'),
    dict(type='Resize', scale=IMAGE_SIZE[::-1], keep_ratio=False),
    dict(type='TokenizeCaption', context_length=77),
    dict(type='PackTextPersonInputs'),
]

NO_MASKING = dict(scorer=None,
                  neck=dict(_delete_=True, type='DualMaskNeck',
                            policy='off'),
                  mtp_head=None)
CSS = dict(_delete_=True, type='CosineScorer')


class ArmSpec(NamedTuple):
    """What an arm changes: the model config changes, whether it keeps a
    score bank, and the fraction of the oracle's token labels flipped
    (``AnnotateTokens(flip_rate=...)``; oracle arms only)."""
    changes: dict
    keeps_bank: bool
    flip_rate: float = 0.0


def scorer_types(scorer) -> set:
    """The registered types of a scorer config and of the scorers it
    combines."""
    if not scorer:
        return set()
    return {scorer.get('type')}.union(
        *(scorer_types(inner) for inner in scorer.get('scorers', [])),
        scorer_types(scorer.get('mix_with')))


# name -> (model changes, whether the arm keeps a score bank); constant and
# uniform arms are filled in from the GA-DMS reference run (see
# control_arms)
ARMS: Dict[str, Tuple[dict, bool]] = {
    'CLIP-SDM': (NO_MASKING, False),
    'GA-DMS': ({}, True),
    'GA-DMS, rank scores': (dict(scorer=dict(norm='rank', relu=False)),
                            True),
    'row 2: CSS, MTP': (dict(scorer=CSS, neck=dict(noise_alpha=0.0)), True),
    'row 3: CSS, SDM*': (dict(scorer=CSS, mtp_head=None), True),
    'row 4: CSS, SDM*, MTP': (dict(scorer=CSS), True),
    'row 5: GASS, MTP': (dict(neck=dict(noise_alpha=0.0)), True),
    'row 6: GASS, SDM*': (dict(mtp_head=None), True),
}
# oracle arms: the injected noise's tokens score 0, the rest 1 (read from
# the corpus' noise spans); their arms train on annotated_train_pipeline()
ORACLE = dict(scorer=dict(_delete_=True, type='AnnotatedTokenScorer'))
ORACLE_ARM = 'GA-DMS, oracle scores'
ORACLE_ARMS = {
    ORACLE_ARM: (ORACLE, True),
    'oracle, no MTP': (dict(ORACLE, mtp_head=None), True),
}
CONSTANT_ARM = 'constant scores'
UNIFORM_ARM = 'uniform masking'
ORACLE_UNIFORM_ARM = 'uniform masking at the oracle rates'


def uniform_arm(rates: Tuple[float, float]) -> Tuple[dict, bool]:
    """Masks drawn uniformly over the tokens at the rates ``(p_n, p_i)``:
    how many tokens a scorer's masks hide, without which."""
    return (dict(scorer=None, neck=dict(
        policy='uniform', uniform_rates=tuple(round(r, 5) for r in rates))),
        False)


def control_arms(mean_score: float, rates: Tuple[float, float]) -> dict:
    """The two controls: masks from a constant score equal to GA-DMS's
    mean token score, and masks at GA-DMS's mean selection rates."""
    return {
        CONSTANT_ARM: (dict(scorer=dict(_delete_=True, type='RandomScorer',
                                        value=round(mean_score, 5))), True),
        UNIFORM_ARM: uniform_arm(rates),
    }


def _lines(name: str, value) -> str:
    return f'{name} = {pprint.pformat(value, width=72, sort_dicts=False)}\n'


def stage0_config(corpus: str, epochs: int) -> str:
    """CLIP-SDM on the shapes corpus (contrastive pretraining)."""
    base = osp.join(REPO_ROOT, 'configs', 'baselines',
                    'clip-sdm_tiny_1xb64_synthperson.py')
    dataset = dict(type='WebPerson', data_root=corpus, ann_file='data',
                   pipeline=TRAIN_PIPELINE)
    return (_lines('_base_', [base]) + _train_lines(dataset, epochs) +
            _lines('val_dataloader', None) + _lines('val_cfg', None) +
            _lines('val_evaluator', None) + _lines('test_dataloader', None) +
            _lines('test_cfg', None) + _lines('test_evaluator', None))


def arm_config(arm: ArmSpec, corpus: str, weights: str, epochs: int,
               batch_size: int, test_loader: dict, seed: int = 0,
               train_set: Optional[dict] = None) -> str:
    """An arm's stage-1 training and stage-2 test config (Python text).
    An arm scored by AnnotatedTokenScorer trains on the annotated
    pipeline, its flips drawn from the run's ``seed``; one scored by
    ConsensusTokenScorer on the consensus pipeline, with its training
    set's caption groups. ``train_set``: the training dataset (without
    pipeline); the WebPerson corpus at ``corpus`` without it."""
    changes, keeps_bank, flip_rate = arm
    types = scorer_types(changes.get('scorer'))
    oracle = 'AnnotatedTokenScorer' in types
    consensus = 'ConsensusTokenScorer' in types
    if flip_rate and not oracle:
        raise ValueError('flip_rate flips the labels of an oracle arm '
                         '(AnnotatedTokenScorer) only')
    base = osp.join(REPO_ROOT, 'configs/gadms/gadms_tiny_1xb64_synthperson.py')
    model = dict(backbone=dict(pretrained=weights), **changes)
    hooks = [dict(type='ScoreBankHook', context_length=77)] \
        if keeps_bank else []
    pipeline = annotated_train_pipeline(flip_rate, seed, oracle, consensus) \
        if oracle or consensus else TRAIN_PIPELINE
    dataset = dict(train_set or dict(type='WebPerson', data_root=corpus,
                                     ann_file='data'), pipeline=pipeline)
    if consensus:
        dataset['caption_groups'] = 'identity'
    return (_lines('_base_', [base]) + _lines('model', model) +
            _lines('custom_hooks', hooks) +
            _train_lines(dataset, epochs, batch_size) +
            _lines('val_dataloader', None) + _lines('val_cfg', None) +
            _lines('val_evaluator', None) +
            _lines('test_dataloader', test_loader) +
            _lines('test_evaluator', dict(type='TextPersonRetrievalMetric')))


def _train_lines(dataset: dict, epochs: int, batch_size: int = 64) -> str:
    loader = dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='ResumableSampler', shuffle=True),
        drop_last=True,
        dataset=dict(_delete_=True, **dataset))
    return (_lines('train_dataloader', loader) +
            _lines('train_cfg', dict(max_epochs=epochs,
                                     val_interval=epochs + 1)) +
            _lines('default_hooks', dict(
                logger=dict(interval=10),
                checkpoint=dict(interval=epochs, save_best=None,
                                max_keep_ckpts=1))))


# the hallucination regime (issue #27): half the captions have one colour
# word replaced by a wrong one, no other noise; the oracle flags exactly
# the wrong words
HALLUCINATION_ERRORS = dict(background=0.0, hallucination=0.0,
                            wrong_colour=0.5, repetition=0.0, truncation=0.0)
HARD = dict(noise_preset='hard')
ORACLE_HARD_ARM = 'oracle, hard'
HALLUCINATION_ARMS: Dict[str, ArmSpec] = {
    'CLIP-SDM': ArmSpec(*ARMS['CLIP-SDM']),
    'GA-DMS': ArmSpec(*ARMS['GA-DMS']),
    'oracle, paper strength': ArmSpec(ORACLE, True),
    ORACLE_HARD_ARM: ArmSpec(dict(ORACLE, neck=HARD), True),
    'oracle, hard, no MTP': ArmSpec(dict(ORACLE, neck=HARD, mtp_head=None),
                                    True),
    'GASS, hard': ArmSpec(dict(neck=HARD), True),
}
FLIP_RATES = (0.1, 0.2, 0.3, 0.5)
# the sweep between the two ends: GASS with a per-caption budget, and the
# oracle with a fraction q of its token labels flipped (q = 0.5: chance)
SWEEP_ARMS: Dict[str, ArmSpec] = {
    **{f'GASS, hard, at most {k}': ArmSpec(
        dict(neck=dict(HARD, noise_budget=k)), True) for k in (1, 2)},
    **{f'oracle, hard, q={q}': ArmSpec(dict(ORACLE, neck=HARD), True, q)
       for q in FLIP_RATES},
}

# issue #35: guidance that knows when a word is false. Consensus: a colour
# word's agreement with the other captions of its image (the corpus) or
# identity (a benchmark-layout set); counterfactual: the model's own
# preference of the written colour over every other (its softmax weight at
# the SDM temperature); combined: consensus, with the words it flags kept
# only where the model also prefers another colour
CONSENSUS = dict(_delete_=True, type='ConsensusTokenScorer')
COUNTERFACTUAL = dict(_delete_=True, type='CounterfactualTokenScorer',
                      lexicon=LEXICON, temperature=0.02, output='weight')
COMBINED = dict(_delete_=True, type='CombinedTokenScorer', mode='tiebreak',
                scorers=[dict(type='ConsensusTokenScorer'),
                         dict(type='CounterfactualTokenScorer',
                              lexicon=LEXICON, output='win')])
GUIDANCE_SCORERS = dict(consensus=CONSENSUS, counterfactual=COUNTERFACTUAL,
                        combined=COMBINED)
STRENGTHS = {'paper strength': {}, 'hard': dict(neck=HARD)}
GUIDANCE_ARMS: Dict[str, ArmSpec] = {
    'CLIP-SDM': ArmSpec(*ARMS['CLIP-SDM']),
    **{f'{name}, {strength}': ArmSpec(dict(scorer=scorer, **neck), True)
       for name, scorer in GUIDANCE_SCORERS.items()
       for strength, neck in STRENGTHS.items()},
}
