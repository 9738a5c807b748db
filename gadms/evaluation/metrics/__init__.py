from .retrieval import TextPersonRetrievalMetric, compute_retrieval_metrics

__all__ = ['TextPersonRetrievalMetric', 'compute_retrieval_metrics']
