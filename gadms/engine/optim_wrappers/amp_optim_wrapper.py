from typing import Optional, Union

import torch
from mmengine.device import is_cuda_available
from mmengine.optim import AmpOptimWrapper as MMEngineAmpOptimWrapper
from mmengine.optim import OptimWrapper

from gadms.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AmpOptimWrapper(MMEngineAmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper``, usable on CPU with bfloat16.

    On a GPU it is MMEngine's wrapper unchanged: autocast to ``dtype``
    (``'float16'`` with a dynamic grad scaler, or ``'bfloat16'``), fp32
    master weights in the optimizer, scaler state in checkpoints. MMEngine
    refuses CPUs; here a CPU run autocasts to bfloat16 with loss scaling
    disabled (bf16 has fp32's exponent range), so the same config trains
    on a laptop and on a cluster. fp16 on a CPU raises.

    Use in configs::

        optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
                             optimizer=dict(type='Adam', lr=1e-5, eps=1e-8))
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 **kwargs) -> None:
        if is_cuda_available():
            super().__init__(loss_scale=loss_scale, dtype=dtype, **kwargs)
            return
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError('mixed precision on CPU needs '
                             f"dtype='bfloat16', got {dtype!r}; float16 "
                             'needs a GPU')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16
