from .score_bank_hook import ScoreBankHook

__all__ = ['ScoreBankHook']
