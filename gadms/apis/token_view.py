"""Each word's part in a match: the token scores of (image, caption)
pairs under a model's scorer, with its dual-mask neck's view of them
(``tools/analysis_tools/visualize_token_scores.py``, ``tools/serve.py``)."""
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import nn

from gadms.datasets.transforms import MASK_TOKEN_ID
from gadms.registry import MODELS
from gadms.visualization import word_rows

# (BGR image [H, W, 3], caption, image name or None)
Pair = Tuple[np.ndarray, str, object]


def token_scorer(model: nn.Module, default: bool) -> nn.Module:
    """The model's scorer, or with ``default`` a ``GradAttnScorer`` over
    its last (up to 8) text layers.

    Raises:
        ValueError: the model has no scorer and ``default`` is off.
    """
    scorer = getattr(model, 'scorer', None)
    if scorer is not None:
        return scorer
    if not default:
        raise ValueError(f'{type(model).__name__} has no token scorer')
    return MODELS.build(dict(
        type='GradAttnScorer',
        num_layers=min(8, len(model.backbone.clip.transformer.resblocks)),
        norm_scope='sample'))


def score_pairs(inferencer, pairs: Sequence[Pair], scorer: nn.Module,
                step: int = 0) -> dict:
    """The token scores ``[T, L]`` of each (image, caption) pair, each
    view's masking probabilities, one draw of the neck's masks (the
    model's neck, keyed by the pair's number, ``step`` and the neck's seed
    or else the config's ``randomness.seed``, as in training) and the ids.
    """
    model = inferencer.model
    neck = getattr(model, 'neck', None) or MODELS.build(
        dict(type='DualMaskNeck'))
    text_ids = torch.from_numpy(inferencer.tokenizer(
        [caption for _, caption, _ in pairs])).to(inferencer.device)
    height, width = inferencer.image_size
    pixels = np.stack([cv2.resize(image, (width, height))
                       for image, _, _ in pairs])
    with torch.no_grad():
        images = model.data_preprocessor.normalise_images(
            torch.from_numpy(pixels).permute(0, 3, 1, 2).to(
                inferencer.device))
        image_tokens = model.backbone.encode_image(images)
        # the scorer takes its own gradients where it needs them
        scores = scorer(model.backbone, text_ids, image_tokens)
        p_noise, p_info = neck.view_probs(text_ids, scores)
        if neck.seed is None:  # training keys the draws by the run's seed
            torch.manual_seed(inferencer.cfg.get('randomness', {}).get(
                'seed', 0))
        views = neck(text_ids, scores, sample_keys=torch.arange(
            len(pairs), device=text_ids.device), step=step)
    eligible = (text_ids > 0) & (text_ids < MASK_TOKEN_ID)
    no_targets = torch.zeros_like(eligible)
    return dict(scores=scores, p_noise=p_noise * eligible,
                p_info=p_info * eligible, noise=views.noise_labels != 0,
                mtp=no_targets if views.mtp_labels is None else (
                    views.mtp_labels != 0),
                text_ids=text_ids,
                full_bar=float(max(p_noise.max(), p_info.max(), 0.05)))


def word_view(inferencer, image: np.ndarray, caption: str,
              scorer: nn.Module) -> List[dict]:
    """One row per word of ``caption`` for ``image``
    (:func:`~gadms.visualization.word_rows`: text, score, each view's
    probability, the drawn masks)."""
    scored = {key: value.cpu().numpy() if torch.is_tensor(value) else value
              for key, value in score_pairs(
                  inferencer, [(image, caption, None)], scorer).items()}
    return word_rows(
        inferencer.tokenizer.words(torch.from_numpy(scored['text_ids'][0])),
        *(scored[key][0] for key in ('scores', 'p_noise', 'p_info', 'noise',
                                     'mtp')))
