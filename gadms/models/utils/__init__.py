from .distributed import gather_with_local_grad
from .score_bank import TokenScoreBank

__all__ = ['gather_with_local_grad', 'TokenScoreBank']
