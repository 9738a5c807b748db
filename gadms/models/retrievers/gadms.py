import logging
from typing import Dict, Optional

import torch
from mmengine.logging import MessageHub, print_log

from gadms.registry import MODELS
from ..score_bank import TokenScoreBank
from .clip_sdm import CLIPSDM, SampleList


@MODELS.register_module()
class GADMS(CLIPSDM):
    """GA-DMS: gradient-attention guided dual masking on top of CLIP-SDM.

    One training step (method.md 6.1):

    1. encode the images once (all tokens; token 0 is the global feature);
    2. the neck masks each caption twice, guided by the token scores the
       score bank holds from the previous epoch (0.85 before the first):
       noise-like tokens in the alignment view, informative tokens in the
       MTP view;
    3. one batched text forward encodes both views;
    4. SDM aligns images with the noise-masked view (sentence feature at
       the clean caption's EOT), and the MTP head predicts the masked
       informative tokens from the image tokens (weighted by beta);
    5. the scorer rates the clean caption's tokens and the bank stores the
       scores for the next epoch.

    ``predict`` is the baseline's. With ``scorer=None``,
    ``neck=dict(type='DualMaskNeck', policy='off')`` and ``mtp_head=None``
    the loss is exactly CLIP-SDM's.

    Args:
        backbone (dict): CLIP backbone config.
        loss (dict): Alignment loss (``SDMLoss``).
        scorer (dict, optional): Token scorer (``GradAttnScorer``); None
            skips scoring.
        neck (dict): ``DualMaskNeck`` config.
        mtp_head (dict, optional): ``MTPHead`` config (its loss's
            ``loss_weight`` is beta; ``embed_dim`` defaults to the
            backbone's); None disables MTP.
        id_head (dict, optional): ``IdentityHead`` config.
        score_init (float): Token score before a caption is first scored.
        nonfinite_loss (str): ``'raise'`` or ``'skip'``, see
            :class:`CLIPSDM`.
        data_preprocessor (dict, optional): Defaults to
            ``TextPersonDataPreprocessor``.
        init_cfg (dict, optional): MMEngine initialisation config.

    The score bank (:class:`TokenScoreBank`) is sized to the training set
    and attached by ``ScoreBankHook``; without it every caption reads
    ``score_init``.
    """

    def __init__(self,
                 backbone: dict,
                 loss: dict = dict(type='SDMLoss'),
                 scorer: Optional[dict] = dict(type='GradAttnScorer'),
                 neck: dict = dict(type='DualMaskNeck'),
                 mtp_head: Optional[dict] = dict(
                     type='MTPHead', loss=dict(type='MaskedTokenLoss',
                                           loss_weight=0.4)),
                 id_head: Optional[dict] = None,
                 score_init: float = 0.85,
                 nonfinite_loss: str = 'raise',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            loss=loss,
            id_head=id_head,
            nonfinite_loss=nonfinite_loss,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.scorer = MODELS.build(scorer) if scorer else None
        self.neck = MODELS.build(neck)
        self.mtp_head = None
        if mtp_head is not None:
            mtp_head = dict(mtp_head)
            mtp_head.setdefault('embed_dim', self.backbone.embed_dim)
            self.mtp_head = MODELS.build(mtp_head)
        self.score_init = score_init
        self.score_bank: Optional[TokenScoreBank] = None
        self._warned_without_bank = False

    @staticmethod
    def _sample_indices(data_samples: SampleList) -> torch.Tensor:
        return torch.tensor([sample.sample_idx for sample in data_samples])

    def _previous_scores(self, data_samples: SampleList,
                         text_ids: torch.Tensor) -> Optional[torch.Tensor]:
        if not self.neck.needs_scores:
            return None
        if self.score_bank is None:
            if self.scorer is not None and not self._warned_without_bank:
                self._warned_without_bank = True
                print_log(
                    'GADMS has a scorer but no score bank: add '
                    "custom_hooks=[dict(type='ScoreBankHook')]; every "
                    f'caption keeps the initial score {self.score_init}',
                    logger='current', level=logging.WARNING)
            return torch.full(text_ids.shape, self.score_init,
                              device=text_ids.device)
        scores = self.score_bank.read(self._sample_indices(data_samples))
        return scores.to(text_ids.device)

    def loss(self, inputs: Dict[str, torch.Tensor],
             data_samples: SampleList) -> Dict[str, torch.Tensor]:
        self._check_one_caption_per_image(inputs)
        images, text_ids = inputs['images'], inputs['text_ids']
        batch = images.shape[0]
        pids = self._pids(data_samples, images.device)

        image_tokens = self.backbone.encode_image(images)
        image_feats = self.backbone.pool_image(image_tokens)
        # masks keyed by (step, sample): the same on any number of ranks
        views = self.neck(
            text_ids,
            self._previous_scores(data_samples, text_ids),
            sample_keys=self._sample_indices(data_samples),
            step=MessageHub.get_current_instance().get_info('iter', 0))
        with_mtp = self.mtp_head is not None and views.mtp_ids is not None
        view_ids = torch.cat([views.noise_ids, views.mtp_ids]) \
            if with_mtp else views.noise_ids
        text_tokens = self.backbone.encode_text(view_ids)
        # EOT never moves under masking: read it from the clean caption
        text_feats = self.backbone.pool_text(text_tokens[:batch], text_ids)

        losses = dict(loss_sdm=self.loss_align(image_feats, text_feats, pids))
        tied = getattr(self.neck, 'budget_tied_fraction', None)
        if tied is not None:  # logged, not a loss: captions cut in a tie
            losses['noise_budget_tied'] = torch.tensor(tied,
                                                       device=images.device)
        if with_mtp:
            losses.update(
                self.mtp_head.loss(text_tokens[batch:], image_tokens,
                                   views.mtp_labels))
        if self.id_head is not None:
            losses.update(self.id_head.loss(image_feats, text_feats, pids))
        if self.scorer is not None and self.score_bank is not None:
            scores = self.scorer(self.backbone, text_ids, image_tokens,
                                 data_samples)
            self.score_bank.update(
                self._sample_indices(data_samples).to(scores.device), scores)
        return losses
