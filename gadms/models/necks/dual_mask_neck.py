import warnings
from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import nn

from gadms.datasets.transforms.tokenizer import MASK_TOKEN_ID
from gadms.registry import MODELS
from ..utils import keyed_uniform

POLICIES = ('score', 'uniform', 'random', 'off')
# named strengths of the noise view: the paper's (a token scored 0 is
# selected 18% of the time, [MASK]ed 14%) and a hard one (scored below
# about 0.05: nearly always [MASK]ed); docs/method.md tabulates both per
# score. Each sets the noise view's own slope (noise_lam), so the MTP view
# keeps the paper's lam = 20 under either.
NOISE_PRESETS = dict(
    paper=dict(noise_alpha=0.2, noise_lam=None, noise_gamma=0.9,
               noise_replace='bert'),
    hard=dict(noise_alpha=1.0, noise_lam=60.0, noise_gamma=0.9,
              noise_replace='mask_only'))
# purpose of the keyed draw that breaks the budget's ties (0-5: the views)
TIE_BREAK_PURPOSE = 6


class MaskedViews(NamedTuple):
    """Output of :class:`DualMaskNeck` (all ``[B, N]`` long tensors).

    ``noise_ids`` / ``noise_labels``: the caption for alignment with its
    noise-like tokens corrupted, and which were selected (original id where
    selected, 0 elsewhere). ``mtp_ids`` / ``mtp_labels``: the caption for
    masked-token prediction and its targets, in the same form; ``None``
    when the policy has no MTP view.
    """

    noise_ids: torch.Tensor
    noise_labels: torch.Tensor
    mtp_ids: Optional[torch.Tensor]
    mtp_labels: Optional[torch.Tensor]


@MODELS.register_module()
class DualMaskNeck(nn.Module):
    """Score-guided dual masking of a caption (method.md section 4).

    With token scores ``s`` in [0, 1]:

    - noise view: ``p_n = noise_alpha * sigmoid(noise_lam * ((1 - s) -
      noise_gamma))``, so low-score (noise-like) tokens are corrupted
      (``noise_lam`` defaults to ``lam``);
    - MTP view: ``p_i = info_alpha * sigmoid(lam * (s - info_gamma))``, so
      informative tokens are masked and must be predicted.

    Each eligible position (``0 < id < 49405``: never padding, SOT, EOT or
    ``[MASK]``) is selected with its probability; a selected token becomes
    ``[MASK]`` (80%), a random id in [1, 49404] (10%) or stays (10%). A row
    with nothing selected gets position 1 forced to ``[MASK]`` when the
    view's ``force_one`` flag is set (default: MTP view only).

    Policies: ``'score'`` (above), ``'uniform'`` (both views as above but
    every eligible token selected with the fixed ``uniform_rates`` (p_n,
    p_i): the control that masks at GA-DMS's rates without its guidance),
    ``'random'`` (noise view untouched, uniform ``random_ratio`` BERT
    masking for MTP: IRRA fine-tuning) and ``'off'`` (noise view
    untouched, no MTP view).

    Randomness: given ``sample_keys`` (the samples' dataset indices) and
    ``step`` (the training iteration), every draw is a hash of (seed,
    step, sample, position, purpose), so a caption gets the same masks
    whichever process holds it and however the global batch is split.
    Without keys, ``torch.rand`` is used.

    Args:
        policy (str): ``'score'``, ``'uniform'``, ``'random'`` or ``'off'``.
        noise_alpha, info_alpha (float): Caps of p_n and p_i (0.2, 0.3).
        lam (float): Sigmoid slope (20) of the MTP view, and of the noise
            view unless ``noise_lam`` is given.
        noise_lam (float, optional): The noise view's own slope.
        noise_gamma, info_gamma (float): Sigmoid centres (0.9 on 1 - s,
            0.1 on s).
        random_ratio (float): Selection rate of the ``'random'`` policy.
        uniform_rates (tuple[float, float]): (p_n, p_i) of the
            ``'uniform'`` policy.
        noise_replace (str): ``'bert'`` (80/10/10) or ``'mask_only'`` for
            the noise view.
        force_one_noise, force_one_mtp (bool): Fallback per view.
        seed (int, optional): Seed of the keyed draws; defaults to
            ``torch.initial_seed()`` (the run's seed).
        noise_preset (str, optional): A named strength of the noise view
            (``NOISE_PRESETS``: ``'paper'`` or ``'hard'``) that sets
            ``noise_alpha``, ``noise_lam``, ``noise_gamma`` and
            ``noise_replace``; those four must then keep their defaults.
            The MTP view is left as it is.
        noise_mask (str, optional): Deprecated name of ``noise_preset``
            (accepted with a warning until gadms 0.3).
        noise_budget (int, optional): Under the ``'score'`` policy, at
            most this many tokens per caption can be selected for the
            noise view: its ``noise_budget`` lowest-scored eligible tokens
            keep their ``p_n``, every other token gets 0. Tied scores are
            ordered by a keyed random draw (the same on any process
            count), so a tie does not always go to the first words;
            :attr:`budget_tied_fraction` is the fraction of the last
            batch's captions whose budget cut fell inside a tie.
            ``None``: no budget.
    """

    def __init__(self,
                 policy: str = 'score',
                 noise_alpha: float = 0.2,
                 info_alpha: float = 0.3,
                 lam: float = 20.0,
                 noise_gamma: float = 0.9,
                 info_gamma: float = 0.1,
                 random_ratio: float = 0.15,
                 uniform_rates: Tuple[float, float] = (0.1, 0.15),
                 noise_replace: str = 'bert',
                 force_one_noise: bool = False,
                 force_one_mtp: bool = True,
                 seed: Optional[int] = None,
                 noise_preset: Optional[str] = None,
                 noise_budget: Optional[int] = None,
                 noise_lam: Optional[float] = None,
                 noise_mask: Optional[str] = None) -> None:
        super().__init__()
        noise_preset = self._renamed_preset(noise_preset, noise_mask)
        if noise_preset is not None:
            noise_alpha, noise_lam, noise_gamma, noise_replace = \
                self._preset(noise_preset,
                             dict(noise_alpha=noise_alpha, noise_lam=noise_lam,
                                  noise_gamma=noise_gamma,
                                  noise_replace=noise_replace))
        if policy not in POLICIES:
            raise ValueError(f'policy must be one of {POLICIES}, got '
                             f'{policy!r}')
        if noise_budget is not None and noise_budget < 1:
            raise ValueError(f'noise_budget must be a positive number of '
                             f'tokens or None, got {noise_budget!r}')
        if noise_replace not in ('bert', 'mask_only'):
            raise ValueError("noise_replace must be 'bert' or 'mask_only', "
                             f'got {noise_replace!r}')
        self.policy = policy
        self.noise_alpha, self.info_alpha = noise_alpha, info_alpha
        self.lam = lam
        self.noise_lam = lam if noise_lam is None else noise_lam
        self.noise_gamma, self.info_gamma = noise_gamma, info_gamma
        self.random_ratio = random_ratio
        self.uniform_rates = tuple(uniform_rates)
        self.noise_replace = noise_replace
        self.force_one_noise = force_one_noise
        self.force_one_mtp = force_one_mtp
        self.seed = seed
        self.noise_budget = noise_budget
        self.budget_tied_fraction: Optional[float] = None

    @staticmethod
    def _renamed_preset(noise_preset: Optional[str],
                        noise_mask: Optional[str]) -> Optional[str]:
        """``noise_preset``, or the value of its old name ``noise_mask``
        with a deprecation warning."""
        if noise_mask is None:
            return noise_preset
        if noise_preset is not None:
            raise ValueError('give noise_preset only (noise_mask is its '
                             'deprecated name)')
        warnings.warn('DualMaskNeck(noise_mask=...) is deprecated: use '
                      'noise_preset (the same values)', DeprecationWarning,
                      stacklevel=3)
        return noise_mask

    @staticmethod
    def _preset(name: str, given: dict) -> tuple:
        """The four noise-view settings of preset ``name``; ``given`` (the
        arguments passed) must hold the defaults, the paper's values."""
        if name not in NOISE_PRESETS:
            raise ValueError(f'noise_preset must be one of '
                             f'{tuple(NOISE_PRESETS)}, got {name!r}')
        changed = sorted(key for key, value in given.items()
                         if value != NOISE_PRESETS['paper'][key])
        if changed:
            raise ValueError(f'noise_preset={name!r} sets {changed}: give '
                             'either the preset or the settings')
        return tuple(NOISE_PRESETS[name][key] for key in given)

    @property
    def needs_scores(self) -> bool:
        """Whether :meth:`forward` reads token scores."""
        return self.policy == 'score'

    def selection_probs(self, scores: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[B, N]`` scores -> (p_n, p_i), each ``[B, N]``."""
        p_noise = self.noise_alpha * torch.sigmoid(
            self.noise_lam * ((1 - scores) - self.noise_gamma))
        p_info = self.info_alpha * torch.sigmoid(
            self.lam * (scores - self.info_gamma))
        return p_noise, p_info

    def view_probs(self, text_ids: torch.Tensor,
                   scores: Optional[torch.Tensor] = None,
                   tie_draws: Optional[torch.Tensor] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The probability ``[B, N]`` that the noise (SDM) view and the MTP
        view select each position under the policy, before the
        eligibility of the token and the forced first-word mask: 0 for a
        view the policy leaves alone (``'off'``; the noise view of
        ``'random'``). ``tie_draws [B, N]`` order the budget's ties (see
        :meth:`lowest_scored`)."""
        zeros = torch.zeros(text_ids.shape, device=text_ids.device)
        if self.policy == 'off':
            return zeros, zeros
        if self.policy == 'random':
            return zeros, zeros + self.random_ratio
        if self.policy == 'uniform':
            return zeros + self.uniform_rates[0], zeros + self.uniform_rates[1]
        if scores is None:
            raise ValueError("the 'score' policy needs token scores")
        scores = scores.to(text_ids.device)
        p_noise, p_info = self.selection_probs(scores)
        if self.noise_budget is not None:
            if tie_draws is None:
                tie_draws = torch.rand(text_ids.shape, device=text_ids.device)
            p_noise = p_noise * self.lowest_scored(text_ids, scores,
                                                   tie_draws)
        return p_noise, p_info

    def lowest_scored(self, text_ids: torch.Tensor, scores: torch.Tensor,
                      tie_draws: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` bool: the ``noise_budget`` lowest-scored eligible
        positions of each row (fewer where a row has fewer eligible
        tokens), equal scores ordered by ``tie_draws [B, N]`` (uniforms:
        the lower draw first). Sets :attr:`budget_tied_fraction`."""
        eligible = (text_ids > 0) & (text_ids < MASK_TOKEN_ID)
        keys = scores.float().masked_fill(~eligible, float('inf'))
        # order by the draws, then stably by score: equal scores keep the
        # draws' order (ineligible positions sort last)
        by_draw = tie_draws.argsort(dim=1)
        by_score = keys.gather(1, by_draw).argsort(dim=1, stable=True)
        order = by_draw.gather(1, by_score)
        chosen = torch.zeros_like(eligible).scatter_(
            1, order[:, :self.noise_budget], True) & eligible
        self.budget_tied_fraction = self._tied_fraction(
            keys.gather(1, order), eligible.sum(dim=1))
        return chosen

    def _tied_fraction(self, sorted_keys: torch.Tensor,
                       num_eligible: torch.Tensor) -> float:
        """The fraction of rows whose budget cut splits a tie: the last
        chosen score equals the first one left out (rows with no more
        eligible tokens than the budget have no cut)."""
        budget = self.noise_budget
        if sorted_keys.shape[1] <= budget or not len(sorted_keys):
            return 0.0
        has_cut = num_eligible > budget
        split = sorted_keys[:, budget - 1] == sorted_keys[:, budget]
        return float((has_cut & split).float().mean())

    def forward(self,
                text_ids: torch.Tensor,
                scores: Optional[torch.Tensor] = None,
                sample_keys: Optional[torch.Tensor] = None,
                step: int = 0) -> MaskedViews:
        """Build the views of ``text_ids [B, N]``.

        Args:
            text_ids (Tensor): ``[B, N]`` token ids.
            scores (Tensor, optional): ``[B, N]`` token scores, needed by
                the ``'score'`` policy only.
            sample_keys (Tensor, optional): ``[B]`` dataset indices of the
                captions; makes the draws keyed (see the class docstring).
            step (int): Training iteration, a key of the draws.
        """
        untouched = torch.zeros_like(text_ids)
        if self.policy == 'off':
            return MaskedViews(text_ids, untouched, None, None)
        uniform = self._uniform_source(text_ids, sample_keys, step)
        # each view draws three uniforms (selection, replacement kind,
        # random id): purposes 0-2 for the noise view, 3-5 for the MTP view,
        # so the two views' masks are independent draws; 6 orders the ties
        # of a noise budget
        tie_draws = uniform(TIE_BREAK_PURPOSE) \
            if self.noise_budget is not None else None
        p_noise, p_info = self.view_probs(text_ids, scores, tie_draws)
        if self.policy == 'random':
            mtp_ids, mtp_labels = self._corrupt(
                text_ids, p_info, 'bert', self.force_one_mtp,
                lambda purpose: uniform(3 + purpose))
            return MaskedViews(text_ids, untouched, mtp_ids, mtp_labels)
        noise_ids, noise_labels = self._corrupt(text_ids, p_noise,
                                                self.noise_replace,
                                                self.force_one_noise,
                                                uniform)
        mtp_ids, mtp_labels = self._corrupt(
            text_ids, p_info, 'bert', self.force_one_mtp,
            lambda purpose: uniform(3 + purpose))
        return MaskedViews(noise_ids, noise_labels, mtp_ids, mtp_labels)

    def _uniform_source(self, text_ids: torch.Tensor,
                        sample_keys: Optional[torch.Tensor],
                        step: int) -> Callable[[int], torch.Tensor]:
        """A function from a draw's purpose (int) to ``[B, N]`` uniforms."""
        if sample_keys is None:
            return lambda purpose: torch.rand(text_ids.shape,
                                              device=text_ids.device)
        seed = torch.initial_seed() if self.seed is None else self.seed
        samples = sample_keys.to(text_ids.device).long()[:, None]
        positions = torch.arange(text_ids.shape[1],
                                 device=text_ids.device)[None, :]
        return lambda purpose: keyed_uniform(seed, step, samples, positions,
                                             purpose)

    @staticmethod
    def _corrupt(text_ids: torch.Tensor, probs: torch.Tensor, replace: str,
                 force_one: bool, uniform: Callable[[int], torch.Tensor]
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Select positions with ``probs`` and corrupt them; returns the new
        ids and the labels (original id where selected, else 0).
        ``uniform(purpose)`` gives ``[B, N]`` draws in [0, 1)."""
        eligible = (text_ids > 0) & (text_ids < MASK_TOKEN_ID)
        selected = (uniform(0) < probs) & eligible
        draw = uniform(1)
        to_mask = selected & (draw < 0.8) if replace == 'bert' else selected
        to_random = selected & (draw >= 0.8) & (draw < 0.9) \
            if replace == 'bert' else torch.zeros_like(selected)
        if force_one:
            forced = torch.zeros_like(selected)
            forced[:, 1] = ~selected.any(dim=1) & eligible[:, 1]
            selected = selected | forced
            to_mask = to_mask | forced
        # ids in [1, MASK_TOKEN_ID - 1]
        random_ids = 1 + (uniform(2) * (MASK_TOKEN_ID - 1)).long()
        corrupted = torch.where(to_random, random_ids, text_ids)
        corrupted = corrupted.masked_fill(to_mask, MASK_TOKEN_ID)
        labels = torch.where(selected, text_ids, torch.zeros_like(text_ids))
        return corrupted, labels
