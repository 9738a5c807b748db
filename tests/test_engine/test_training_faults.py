"""Faults of a training run and of the tools that start it: a diverged
model, a resume without training state, a full disk, two trainings in one
work dir, schedules shorter than their warm-up, hostile checkpoints."""
import glob
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config
from mmengine.hooks import Hook
from tiny_models import SHRINK_OPTIONS, SMALL_SYNTH_OPTIONS

from gadms.cli import build_runner
from gadms.common.checkpoint_compat import allow_mmengine_checkpoint_globals
from gadms.engine import CheckpointError
from gadms.engine.checkpoint_loading import is_readable_checkpoint
from gadms.engine.scheduler_fitting import fit_schedulers_to_training
from gadms.engine.work_dir_lock import LOCK_NAME, WorkDirLockedError
from gadms.evaluation import NonFiniteScoresError
from gadms.registry import HOOKS, MODELS

# these tests read MMEngine checkpoints with torch.load (weights-only), as
# a user may after allow-listing MMEngine's types
allow_mmengine_checkpoint_globals()

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
SMALL = dict(
    train_dataloader=dict(
        batch_size=32, num_workers=0, persistent_workers=False,
        dataset=dict(num_identities=dict(train=8, val=2, test=2))),
    val_dataloader=dict(num_workers=0, persistent_workers=False,
                        dataset=dict(num_identities=dict(val=4))),
    train_cfg=dict(max_epochs=2, val_interval=1))


@HOOKS.register_module(force=True)
class FaultAfterIterationHook(Hook):
    """Test hook: after iteration ``iteration`` (1-based), either fill every
    weight with NaN (a diverged step) or make ``link`` (a path in the work
    dir) a symbolic link to ``/dev/full`` (a full disk)."""

    priority = 'HIGHEST'

    def __init__(self, iteration: int, fault: str, link: str = '') -> None:
        self.iteration, self.fault, self.link = iteration, fault, link

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 != self.iteration:
            return
        if self.fault == 'nan':
            with torch.no_grad():
                for parameter in runner.model.parameters():
                    parameter.fill_(float('nan'))
        else:
            os.symlink('/dev/full', osp.join(runner.work_dir, self.link))


def _runner(work_dir, **options):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(SMALL)
    cfg.merge_from_dict({key: int(value) for key, value in (
        option.split('=') for option in SHRINK_OPTIONS)})
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    return build_runner(cfg)


def test_a_diverged_model_is_never_the_best(tmp_path):
    """Epoch 1 is validated and saved as best; the last step of epoch 2
    leaves NaN weights. Its validation must raise, not score R1 100, and
    the best checkpoint of epoch 1 must stay."""
    runner = _runner(tmp_path, custom_hooks=[dict(
        type='FaultAfterIterationHook', iteration=4, fault='nan')])
    assert len(runner.train_dataloader) == 2  # iteration 4 ends epoch 2
    with pytest.raises(NonFiniteScoresError, match='NaN or infinite'):
        runner.train()
    best, = glob.glob(str(tmp_path / 'best_*.pth'))
    assert osp.basename(best) == 'best_t2i_R1_epoch_1.pth'
    weights = torch.load(best, map_location='cpu')['state_dict']
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_test_tool_refuses_a_nan_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    state = {k: torch.full_like(v, float('nan')) if v.is_floating_point()
             else v for k, v in model.state_dict().items()}
    checkpoint = str(tmp_path / 'nan.pth')
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), checkpoint)
    result = run_tool('tools/test.py', CONFIG, checkpoint, '--work-dir',
                   str(tmp_path / 'test'), '--cfg-options',
                   'test_dataloader.dataset.num_identities.test=4',
                   'test_dataloader.num_workers=0',
                   'test_dataloader.persistent_workers=False')
    assert result.returncode != 0
    assert f'checkpoint {checkpoint} cannot be scored' in result.stderr
    assert 'similarities are NaN or infinite, in' in result.stderr
    assert 'text-to-image retrieval' not in result.stdout  # no table


def test_resume_needs_training_state_and_load_from_starts_anew(tmp_path):
    first = tmp_path / 'first'
    _runner(first, train_cfg=dict(max_epochs=1)).train()
    best = str(first / 'best_t2i_R1_epoch_1.pth')
    resumable = str(first / 'epoch_1.pth')
    options = ['--cfg-options', 'train_cfg.max_epochs=1',
               *SMALL_SYNTH_OPTIONS]
    refused = run_tool('tools/train.py', CONFIG, '--resume', best,
                    '--work-dir', str(tmp_path / 'second'), *options)
    assert refused.returncode != 0
    assert (f'cannot resume from {best}: no optimizer state (e.g. a '
            f'best_*.pth)') in refused.stderr
    assert f'the newest checkpoint there that can resume is {resumable}' \
        in refused.stderr
    assert f'pass --load-from {best}' in refused.stderr
    assert not glob.glob(str(tmp_path / 'second' / '*.pth'))
    # the same through the runner; and no candidate at all
    lonely = tmp_path / 'lonely'
    lonely.mkdir()
    os.link(best, lonely / 'best.pth')
    with pytest.raises(CheckpointError, match='no checkpoint in its folder '
                       'can resume'):
        _runner(tmp_path / 'third', resume=True,
                load_from=str(lonely / 'best.pth')).train()
    # --load-from: a new training from those weights (checked loosely:
    # the run's own log says where its weights came from)
    started = run_tool('tools/train.py', CONFIG, '--load-from', best,
                    '--work-dir', str(tmp_path / 'fresh'), *options)
    assert started.returncode == 0, started.stderr[-3000:]
    assert f'Load checkpoint from {best}' in started.stderr + started.stdout
    assert 'Resumed' not in started.stderr + started.stdout


def test_a_full_disk_names_the_checkpoint_and_keeps_the_last(tmp_path):
    runner = _runner(tmp_path, default_hooks=dict(checkpoint=dict(
        by_epoch=False, interval=1, save_best=None)),
        train_cfg=dict(max_epochs=2, val_interval=100),
        custom_hooks=[dict(type='FaultAfterIterationHook', iteration=3,
                           fault='disk', link='iter_3.pth.part')])
    with pytest.raises(OSError) as raised:
        runner.train()
    message = str(raised.value)
    assert raised.value.errno == 28
    assert f'could not save checkpoint {tmp_path}/iter_3.pth' in message
    assert 'MiB free on the disk of' in message
    assert not osp.lexists(tmp_path / 'iter_3.pth.part')
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last == str(tmp_path / 'iter_2.pth')
    assert is_readable_checkpoint(last)


LOCK_HOLDER = '''
import sys, time
from gadms.engine.work_dir_lock import WorkDirLock
WorkDirLock(sys.argv[1]).acquire()
print('locked', flush=True)
time.sleep(120)
'''


def test_one_training_per_work_dir(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', LOCK_HOLDER,
                               str(tmp_path)], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        runner = _runner(tmp_path, train_cfg=dict(max_epochs=1))
        with pytest.raises(WorkDirLockedError,
                           match=rf'work dir {tmp_path} is in use by another '
                           rf'training \(pid {holder.pid} on host '):
            runner.train()
        assert not glob.glob(str(tmp_path / '*.pth'))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder's lock file stays, naming it; it is taken over
    assert f'"pid": {holder.pid}' in (tmp_path / LOCK_NAME).read_text()
    runner = _runner(tmp_path, train_cfg=dict(max_epochs=1))
    runner.train()
    # the newest of the two runs' timestamped log folders (glob's order is
    # the directory's)
    log = open(sorted(glob.glob(str(tmp_path / '*' / '*.log')))[-1]).read()
    assert (f'taking over the lock of a training that no longer runs '
            f'(pid {holder.pid}') in log
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    assert not osp.exists(tmp_path / LOCK_NAME)  # released


def test_short_schedules_fit_their_schedulers(tmp_path):
    # the command: a one-epoch run of a config with a warm-up
    result = run_tool('tools/train.py', CONFIG, '--work-dir', str(tmp_path),
                   '--cfg-options', 'train_cfg.max_epochs=1',
                   *SMALL_SYNTH_OPTIONS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ('CosineAnnealingLR begins at epoch 1, at or after the end of '
            'this 1-epoch training: left out') in result.stdout + \
        result.stderr
    # the pretraining schedule (warm-up to epoch 6, cosine from epoch 5)
    # in a 3-epoch run, by hand
    pretrain = Config.fromfile(osp.join(
        REPO_ROOT, 'configs/_base_/schedules/adam_30e_pretrain.py'))
    assert fit_schedulers_to_training(pretrain.param_scheduler, 3, 300) == [
        dict(type='LinearLR', start_factor=0.1, end_factor=1.0,
             by_epoch=True, begin=0, end=3)]
    iteration_based = [dict(type='LinearLR', by_epoch=False, begin=0,
                            end=500), dict(type='ConstantLR', begin=2)]
    assert fit_schedulers_to_training(iteration_based, 1, 100) == [
        dict(type='LinearLR', by_epoch=False, begin=0, end=100)]
    runner = _runner(tmp_path / 'pretrain', param_scheduler=pretrain[
        'param_scheduler'], train_cfg=dict(max_epochs=2, val_interval=10))
    runner.train()
    base = runner.optim_wrapper.param_groups[0]['initial_lr']
    # MMEngine's LinearLR from 0.1 ended at epoch 2 reaches factor 1.0 in
    # the last epoch (unfitted, it would be 0.28 there), and keeps it
    assert runner.optim_wrapper.get_lr()['lr'][0] == pytest.approx(base)


FORBIDDEN_GLOBAL = '''
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ('touch ' + sys.argv[2],))
torch.save(dict(state_dict=dict(w=torch.zeros(1)), extra=Payload()),
           sys.argv[1])
'''


def test_test_tool_names_a_forbidden_global(tmp_path):
    checkpoint, sentinel = tmp_path / 'hostile.pth', tmp_path / 'ran'
    subprocess.run([sys.executable, '-c', FORBIDDEN_GLOBAL, str(checkpoint),
                    str(sentinel)], check=True)
    result = run_tool('tools/test.py', CONFIG, str(checkpoint), '--work-dir',
                   str(tmp_path / 'test'))
    assert result.returncode != 0
    assert (f'CheckpointError: checkpoint {checkpoint} holds objects outside '
            'the weights-only allow-list (it names posix.system); if you '
            'trust its source, load it with --trust-checkpoint') in \
        result.stderr
    assert 'UnpicklingError' not in result.stderr.splitlines()[-1]
    assert not sentinel.exists()
