from .retrieval import (NonFiniteScoresError, TextPersonRetrievalMetric,
                        compute_retrieval_metrics)

__all__ = [
    'NonFiniteScoresError', 'TextPersonRetrievalMetric',
    'compute_retrieval_metrics'
]
