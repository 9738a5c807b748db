"""Parameter schedulers fitted to a training shorter than them."""
import copy
import logging
from typing import List, Union

from mmengine.logging import print_log


def fit_schedulers_to_training(schedulers: Union[dict, list],
                               max_epochs: int, max_iters: int) -> list:
    """Scheduler configs fitted to a training of ``max_epochs`` epochs
    (``max_iters`` iterations for iteration-based ones): one that begins
    at or after the end is dropped, one that ends after it is ended there
    (a warm-up longer than a smoke-test schedule); each change is logged.
    Built schedulers pass unchanged."""
    fitted: List = []
    for scheduler in schedulers if isinstance(schedulers, list) else [
            schedulers]:
        if not isinstance(scheduler, dict):
            fitted.append(scheduler)
            continue
        length = max_epochs if scheduler.get('by_epoch', True) else max_iters
        unit = 'epoch' if scheduler.get('by_epoch', True) else 'iteration'
        begin, end = scheduler.get('begin', 0), scheduler.get('end')
        if begin >= length:
            print_log(f'{scheduler["type"]} begins at {unit} {begin}, at or '
                      f'after the end of this {length}-{unit} training: '
                      'left out', logger='current', level=logging.WARNING)
            continue
        if end is not None and end > length:
            print_log(f'{scheduler["type"]} ends at {unit} {end}, after this '
                      f'{length}-{unit} training: ended at {length}',
                      logger='current', level=logging.WARNING)
            scheduler = dict(copy.deepcopy(scheduler), end=length)
        fitted.append(scheduler)
    return fitted
