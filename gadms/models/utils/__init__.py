from .counter_random import keyed_uniform
from .distributed import (all_reduce_sum, gather_constant, gather_with_grad,
                          global_min_max, local_rows)
from .score_bank import TokenScoreBank

__all__ = [
    'gather_with_grad', 'gather_constant', 'local_rows', 'all_reduce_sum',
    'global_min_max', 'keyed_uniform', 'TokenScoreBank'
]
