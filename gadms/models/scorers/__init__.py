from .annotated_scorer import AnnotatedTokenScorer, ConsensusTokenScorer
from .attention_scorer import AttentionScorer
from .base import BaseTokenScorer
from .combined_scorer import CombinedTokenScorer
from .cosine_scorer import CosineScorer
from .counterfactual_scorer import CounterfactualTokenScorer
from .grad_attn_scorer import GradAttnScorer
from .random_scorer import RandomScorer
from .utils import content_mask, multi_scale_pool, normalise_scores

__all__ = [
    'BaseTokenScorer', 'GradAttnScorer', 'AttentionScorer', 'CosineScorer',
    'RandomScorer', 'AnnotatedTokenScorer', 'ConsensusTokenScorer',
    'CounterfactualTokenScorer', 'CombinedTokenScorer', 'content_mask',
    'multi_scale_pool', 'normalise_scores'
]
