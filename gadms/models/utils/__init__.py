from .distributed import gather_with_local_grad

__all__ = ['gather_with_local_grad']
