"""Pins on MMEngine behaviour that gadms relies on and MMEngine offers no
public extension point for (docs/extending.md, "MMEngine's private
names"). Each test fails when an MMEngine upgrade changes what it pins;
then the matching place in gadms must change with it."""
import importlib.util
import inspect

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from gadms.engine import GADMSRunner


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs=None, data_samples=None, mode='tensor'):
        return dict(loss=self.weight.sum())


def _runner(tmp_path, **kwargs) -> GADMSRunner:
    return GADMSRunner(
        model=_Toy(), work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=dict(type='mmengine.ToyDataset'), batch_size=1,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_scope='gadms', **kwargs)


def test_the_constructor_keeps_load_from_resume_and_the_loader_config(
        tmp_path):
    """GADMSRunner.load_or_resume, load_checkpoint, resuming and train
    read ``_load_from``, ``_resume``, ``_has_loaded`` and
    ``_train_dataloader`` as Runner.__init__ stores them."""
    runner = _runner(tmp_path, load_from='weights.pth', resume=True)
    assert runner._load_from == 'weights.pth'
    assert runner._resume is True and runner.resuming is True
    assert runner._has_loaded is False
    assert isinstance(runner._train_dataloader, dict)
    assert runner._train_dataloader['batch_size'] == 1


@pytest.mark.parametrize('resume,expected', [
    (True, [('resume', 'weights.pth')]),
    (False, [('load_checkpoint', 'weights.pth')]),
])
def test_runner_load_or_resume_follows_the_three_names(tmp_path, resume,
                                                       expected):
    """What GADMSRunner.load_or_resume prepares before calling MMEngine's:
    ``_load_from`` is the file, ``_resume`` chooses resume or load, and
    ``_has_loaded`` stops a second load."""
    runner = _runner(tmp_path)
    calls = []
    runner.resume = lambda path, **kw: calls.append(('resume', path))
    runner.load_checkpoint = lambda path, **kw: calls.append(
        ('load_checkpoint', path))
    runner._load_from, runner._resume = 'weights.pth', resume
    Runner.load_or_resume(runner)
    assert calls == expected and runner._has_loaded is True
    Runner.load_or_resume(runner)
    assert calls == expected  # loaded once


def test_train_builds_the_loop_before_the_schedulers():
    """GADMSRunner.build_param_scheduler asks the built train loop for the
    training's length (max_epochs / max_iters), and GADMSRunner.train
    fits the loader config in ``_train_dataloader`` before the loop is
    built from it."""
    source = inspect.getsource(Runner.train)
    assert source.index('self.build_train_loop(') < source.index(
        'self.build_param_scheduler(')
    assert 'dataloader=self._train_dataloader' in inspect.getsource(
        Runner.build_train_loop)


def test_history_buffer_pickles_its_statistics_as_checkpoint_compat_expects():
    """MMEngine's HistoryBuffer pickles its statistics functions under
    ``statistics_methods`` (taken from the class's ``_statistics_methods``,
    which holds the four built-in ones): the entry that
    gadms.common.checkpoint_compat leaves out."""
    # a fresh copy of MMEngine's module: gadms replaces __getstate__ in
    # this process once a runner is built
    spec = importlib.util.find_spec('mmengine.logging.history_buffer')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = module.HistoryBuffer()
    assert {'min', 'max', 'current', 'mean'} <= set(
        module.HistoryBuffer._statistics_methods)
    state = buffer.__getstate__()
    assert state['statistics_methods']['mean'] is module.HistoryBuffer.mean
