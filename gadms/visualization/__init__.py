from .retrieval_grid import draw_retrieval

__all__ = ['draw_retrieval']
