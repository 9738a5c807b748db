"""Crash-safe checkpoints, clear checkpoint errors and non-finite losses."""
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from common import REPO_ROOT, run_tool, spawn_workers
from mmengine.config import Config
from mmengine.logging import MessageHub

from gadms.cli import build_runner
from gadms.common.checkpoint_compat import allow_mmengine_checkpoint_globals
from gadms.engine import CheckpointError, GADMSRunner
from gadms.engine import resume as resume_module
from gadms.engine.checkpoint_loading import is_readable_checkpoint
from gadms.engine.resume import latest_resumable_checkpoint
from gadms.registry import MODELS

# these tests read MMEngine checkpoints with torch.load (weights-only), as
# a user may after allow-listing MMEngine's types
allow_mmengine_checkpoint_globals()

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
SMALL = dict(
    train_cfg=dict(max_epochs=2, val_interval=100),
    train_dataloader=dict(
        batch_size=16, num_workers=0, persistent_workers=False,
        dataset=dict(num_identities=dict(train=8, val=2, test=2))),
    default_hooks=dict(checkpoint=dict(by_epoch=False, interval=1,
                                       max_keep_ckpts=5, save_best=None)))

# Run training in a child that SIGKILLs itself half-way through writing the
# iteration-3 checkpoint.
KILLED_WHILE_SAVING = '''
import os, signal, sys
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from gadms.cli import build_runner, register_all_modules

def put_then_die(self, obj, filepath):
    if 'iter_3' in str(filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return original_put(self, obj, filepath)

original_put = LocalBackend.put
LocalBackend.put = put_then_die
register_all_modules()
cfg = Config.fromfile(sys.argv[1])
cfg.merge_from_dict(eval(sys.argv[3]))
cfg.work_dir = sys.argv[2]
build_runner(cfg).train()
'''


def _runner(work_dir: str, **options) -> GADMSRunner:
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(dict(SMALL, **options))
    cfg.work_dir = work_dir
    return build_runner(cfg)


def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    work_dir = str(tmp_path)
    child = subprocess.run(
        [sys.executable, '-c', KILLED_WHILE_SAVING, CONFIG, work_dir,
         repr(SMALL)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    # the half-written file never took the checkpoint's name
    assert not osp.exists(osp.join(work_dir, 'iter_3.pth'))
    assert osp.exists(osp.join(work_dir, 'iter_3.pth.part'))
    last = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert osp.basename(last) == 'iter_2.pth' and is_readable_checkpoint(last)
    assert torch.load(last, weights_only=True)['meta']['iter'] == 2
    # a torn save of a name the resumed run never writes again
    torn = osp.join(work_dir, 'iter_99.pth.part')
    with open(torn, 'wb') as f:
        f.write(b'torn')
    runner = _runner(work_dir, resume=True)
    runner.train()
    assert runner.iter == 8 and is_readable_checkpoint(
        osp.join(work_dir, 'iter_8.pth'))
    # the next run removed the torn files
    assert not osp.exists(torn)
    assert not osp.exists(osp.join(work_dir, 'iter_3.pth.part'))


def test_truncated_checkpoint_names_the_file(tmp_path):
    runner = _runner(str(tmp_path / 'work'))
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict=runner.model.state_dict()), good)
    runner.load_checkpoint(good)
    broken = str(tmp_path / 'broken.pth')
    with open(good, 'rb') as src, open(broken, 'wb') as dst:
        dst.write(src.read()[:1000])
    with pytest.raises(CheckpointError,
                       match=f'checkpoint {broken} is truncated or corrupt'):
        runner.load_checkpoint(broken)
    result = run_tool('tools/test.py', CONFIG, broken, '--work-dir',
                      str(tmp_path / 'test'))
    assert result.returncode != 0
    assert f'CheckpointError: checkpoint {broken} is truncated' in \
        result.stderr


def test_empty_or_random_files_are_named_as_broken(tmp_path):
    runner = _runner(str(tmp_path / 'work'))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match=f'checkpoint {empty} is '
                       'empty'):
        runner.load_checkpoint(str(empty))
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(CheckpointError) as raised:
        runner.load_checkpoint(str(noise))
    assert f'checkpoint {noise} is truncated or corrupt: not a torch ' \
        'checkpoint' in str(raised.value)
    assert '--trust-checkpoint' not in str(raised.value)


class Opaque:
    """A pickled class outside the weights-only allow-list."""


def test_untrusted_objects_need_the_trust_flag(tmp_path, monkeypatch):
    runner = _runner(str(tmp_path / 'work'))
    path = str(tmp_path / 'pickled.pth')
    torch.save(dict(state_dict=runner.model.state_dict(), extra=Opaque()),
               path)
    with pytest.raises(CheckpointError, match='--trust-checkpoint'):
        runner.load_checkpoint(path)
    # what tools/*.py --trust-checkpoint sets
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    assert isinstance(runner.load_checkpoint(path)['extra'], Opaque)


@pytest.mark.parametrize('policy', ['raise', 'skip'])
def test_non_finite_loss(policy):
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG).model
    model = MODELS.build(dict(cfg, nonfinite_loss=policy))
    MessageHub.get_current_instance().update_info('iter', 6)
    losses = dict(loss_sdm=torch.tensor(float('nan'), requires_grad=True),
                  loss_id=torch.tensor(1.5, requires_grad=True))
    if policy == 'raise':
        with pytest.raises(FloatingPointError,
                           match='non-finite loss at iteration 7: '
                           'loss=nan, loss_sdm=nan, loss_id=1.5'):
            model.parse_losses(losses)
        return
    loss, log_vars = model.parse_losses(losses)
    assert loss.item() == 0 and torch.isnan(log_vars['loss_sdm'])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and not g.any() for g in grads)


def test_bad_non_finite_policy():
    with pytest.raises(ValueError, match="nonfinite_loss must be 'raise' "
                       "or 'skip'"):
        MODELS.build(dict(Config.fromfile(CONFIG).model,
                          nonfinite_loss='ignore'))


def _training_checkpoint(path, optimizer: bool = True) -> str:
    content = dict(meta=dict(epoch=1, iter=4),
                   state_dict=dict(w=torch.zeros(2)))
    if optimizer:
        content['optimizer'] = dict(state={}, param_groups=[])
    torch.save(content, str(path))
    return str(path)


def _resumable_work_dir(work_dir) -> str:
    """iter_2 resumable, iter_3 (the last) corrupt, then a newer best_*.pth
    without optimizer state."""
    work_dir.mkdir()
    good = _training_checkpoint(work_dir / 'iter_2.pth')
    corrupt = work_dir / 'iter_3.pth'
    corrupt.write_bytes(open(good, 'rb').read()[:300])
    (work_dir / 'last_checkpoint').write_text(str(corrupt))
    best = _training_checkpoint(work_dir / 'best_t2i_R1_iter_3.pth',
                                optimizer=False)
    os.utime(good, (1, 1))
    os.utime(corrupt, (2, 2))
    os.utime(best, (3, 3))
    return good


def test_auto_resume_takes_only_resumable_checkpoints(tmp_path,
                                                      monkeypatch):
    good = _resumable_work_dir(tmp_path / 'work')
    logged = []
    monkeypatch.setattr(resume_module, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    assert latest_resumable_checkpoint(str(tmp_path / 'work')) == good
    skipped = '\n'.join(logged)
    assert 'iter_3.pth: truncated or corrupt' in skipped
    assert 'best_t2i_R1_iter_3.pth: no optimizer state' in skipped


def _resume_choice_worker(rank: int, work_dir: str, out_dir: str) -> None:
    dist.init_process_group('gloo',
                            init_method=f'file://{out_dir}/rendezvous',
                            rank=rank, world_size=2)
    if rank == 1:  # this rank alone sees no resumable checkpoint
        resume_module.has_training_state = lambda path: (False, 'hidden')
    choice = latest_resumable_checkpoint(work_dir)
    with open(osp.join(out_dir, f'rank{rank}'), 'w') as f:
        f.write(str(choice))
    dist.destroy_process_group()


def test_every_rank_resumes_from_rank_zeros_choice(tmp_path):
    good = _resumable_work_dir(tmp_path / 'work')
    spawn_workers(_resume_choice_worker, 2,
                  (str(tmp_path / 'work'), str(tmp_path)))
    assert [(tmp_path / f'rank{r}').read_text() for r in (0, 1)] == \
        [good, good]


def test_evaluation_leaves_a_running_trainings_part_file(tmp_path):
    """Only a training cleans ``.part`` files: a test run sharing the work
    dir (the default for the same config) must not delete the checkpoint
    a running training is writing."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    part = work_dir / 'iter_5.pth.part'
    part.write_bytes(b'being written by a training')
    runner = _runner(str(work_dir), test_dataloader=dict(
        num_workers=0, persistent_workers=False,
        dataset=dict(num_identities=dict(train=2, val=2, test=2))))
    runner.test()
    assert part.read_bytes() == b'being written by a training'
