from .eval_progress_hook import EvalProgressHook
from .random_state_hook import RandomStateHook
from .score_bank_hook import ScoreBankHook

__all__ = ['ScoreBankHook', 'RandomStateHook', 'EvalProgressHook']
