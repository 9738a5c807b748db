from .id_head import IdentityHead

__all__ = ['IdentityHead']
