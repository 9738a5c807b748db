from .id_head import IdentityHead
from .mtp_head import MTPHead

__all__ = ['IdentityHead', 'MTPHead']
