"""Kill a run mid-epoch, break its newest checkpoint, resume: the resumed
run's per-iteration losses equal those of an uninterrupted run."""
import json
import os
import os.path as osp
import time

from common import REPO_ROOT, run_tool

from gadms.engine.checkpoint_loading import is_readable_checkpoint
from gadms.testing.forked_tools import start_forked_tool

CONFIG = 'configs/gadms/gadms_tiny_1xb64_synthperson-noise40.py'
# 16 identities x 4 photos x 2 captions / batch 16 = 8 iterations an epoch;
# 2 epochs; a checkpoint every 3 iterations (mid-epoch); no validation;
# two persistent workers load the data (augmentations seeded per sample:
# the resumed run's new workers draw what the first run's drew)
OPTIONS = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=100',
    'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.by_epoch=False',
    'default_hooks.checkpoint.interval=3',
    'default_hooks.checkpoint.max_keep_ckpts=10',
    'default_hooks.checkpoint.save_best=None',
    'train_dataloader.dataset.num_identities.train=16',
    'train_dataloader.batch_size=16', 'train_dataloader.num_workers=2',
    'train_dataloader.persistent_workers=True',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'randomness.deterministic=True',
]


def _arguments(work_dir: str, *extra: str) -> list:
    return ['tools/train.py', CONFIG, '--work-dir', work_dir, *extra,
            '--cfg-options', *OPTIONS]


def _losses(work_dir: str) -> dict:
    """iteration -> logged losses of the newest run in the work dir."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isdir(osp.join(work_dir, d, 'vis_data')))
    losses = {}
    for line in open(osp.join(work_dir, runs[-1], 'vis_data',
                              'scalars.json')):
        record = json.loads(line)
        if 'loss' in record:
            losses[record['step']] = (record['loss'], record['loss_sdm'],
                                      record['loss_mtp'])
    return losses


def _last_checkpoint(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    return open(path).read().strip() if osp.exists(path) else ''


def _iteration(checkpoint: str) -> int:
    return int(osp.basename(checkpoint)[len('iter_'):-len('.pth')])


def test_kill_break_resume_equals_uninterrupted_run(tmp_path):
    straight_dir = str(tmp_path / 'straight')
    killed_dir = str(tmp_path / 'killed')
    run_tool(*_arguments(straight_dir), check=True)
    expected = _losses(straight_dir)
    assert sorted(expected) == list(range(1, 17))

    run = start_forked_tool(_arguments(killed_dir), os.devnull,
                            cwd=REPO_ROOT)
    deadline = time.time() + 300
    # kill in epoch 2, once the iteration-9 checkpoint is recorded
    while not _last_checkpoint(killed_dir).endswith('iter_9.pth'):
        assert run.is_alive() and time.time() < deadline
        time.sleep(0.02)
    run.kill()  # SIGKILL
    run.join()
    last = _last_checkpoint(killed_dir)
    assert _iteration(last) < 16
    # the newest checkpoint gets truncated: resume must skip it
    with open(last, 'r+b') as f:
        f.truncate(os.path.getsize(last) // 2)
    assert not is_readable_checkpoint(last)
    kept = _iteration(last) - 3

    resumed = run_tool(*_arguments(killed_dir, '--resume'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f'skipping checkpoint {last}: truncated or corrupt' in log
    assert f'resumed epoch: {(kept - 1) // 8}, iter: {kept}' in log
    losses = _losses(killed_dir)
    assert set(range(kept + 1, 17)) <= set(losses)
    for step in range(kept + 1, 17):
        assert losses[step] == expected[step], step
    if kept % 8:
        assert f'skipping its {kept % 8} trained batches' in log
