from .sdm_loss import SDMLoss

__all__ = ['SDMLoss']
