from .masked_token_loss import MaskedTokenLoss
from .sdm_loss import SDMLoss

__all__ = ['SDMLoss', 'MaskedTokenLoss']
