from .counter_random import keyed_uniform
from .distributed import (gather_constant, gather_with_grad, global_min_max,
                          local_rows)
from .groups import (RowGroups, check_norm_scope, group_reduce,
                     row_groups)

__all__ = [
    'gather_with_grad', 'gather_constant', 'local_rows', 'global_min_max',
    'RowGroups', 'row_groups', 'group_reduce', 'check_norm_scope',
    'keyed_uniform'
]
