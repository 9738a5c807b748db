from .retrieval_grid import draw_retrieval
from .token_scores import draw_token_scores, token_scores_html, word_rows

__all__ = [
    'draw_retrieval', 'draw_token_scores', 'token_scores_html', 'word_rows'
]
